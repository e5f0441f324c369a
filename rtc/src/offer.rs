//! A quick look at an offer before str0m negotiates it, and at the parser's complaints, for
//! precise errors.

/// What [`Summary::of`] found in an SDP text.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Summary<'a> {
    /// There is an `m=video` line.
    pub(crate) video: bool,
    /// There is an `a=rtpmap:<pt> H264/90000` line.
    pub(crate) h264: bool,
    /// The first `a=setup:` value that is not `actpass`, which an offer may not have.
    pub(crate) fixed_setup: Option<&'a str>,
}

impl<'a> Summary<'a> {
    pub(crate) fn of(sdp: &'a str) -> Self {
        let mut summary = Summary::default();
        for line in sdp.lines().map(str::trim) {
            if line.starts_with("m=video ") {
                summary.video = true;
            } else if let Some(rtpmap) = line.strip_prefix("a=rtpmap:") {
                let encoding = rtpmap.split_whitespace().nth(1).unwrap_or("");
                if encoding.to_ascii_lowercase().starts_with("h264/") {
                    summary.h264 = true;
                }
            } else if let Some(setup) = line.strip_prefix("a=setup:") {
                if setup != "actpass" && summary.fixed_setup.is_none() {
                    summary.fixed_setup = Some(setup);
                }
            }
        }
        summary
    }
}

/// The `a=mid` values of the video m-lines of `sdp`, in order.
pub(crate) fn video_mids(sdp: &str) -> Vec<&str> {
    let mut mids = Vec::new();
    let mut in_video = false;
    for line in sdp.lines().map(str::trim) {
        if line.starts_with("m=") {
            in_video = line.starts_with("m=video ");
        } else if let Some(mid) = line.strip_prefix("a=mid:") {
            if in_video {
                mids.push(mid);
            }
        }
    }
    mids
}

/// The SDP parser's message on one line, without the memory address it puts in (which means
/// nothing to whoever sent the offer).
pub(crate) fn tidy_parse_error(message: &str) -> String {
    let mut out = Vec::new();
    for line in message.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let line = match line.find(" at PointerOffset(") {
            Some(start) => {
                let end = line[start..]
                    .find(')')
                    .map_or(line.len(), |e| start + e + 1);
                format!("{}{}", &line[..start], &line[end..])
            }
            None => line.to_string(),
        };
        out.push(line);
    }
    out.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_interesting_lines() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=setup:actpass\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\na=rtpmap:96 VP8/90000\r\n\
                   a=rtpmap:102 h264/90000\r\na=setup:active\r\n";
        let summary = Summary::of(sdp);
        assert!(summary.video);
        assert!(summary.h264);
        assert_eq!(summary.fixed_setup, Some("active"));
    }

    #[test]
    fn finds_video_mids() {
        let sdp = "v=0\r\na=mid:x\r\nm=audio 9 RTP/AVP 0\r\na=mid:a\r\n\
                   m=video 9 RTP/AVP 96\r\na=mid:v1\r\nm=video 9 RTP/AVP 96\r\na=mid:v2\r\n";
        assert_eq!(video_mids(sdp), ["v1", "v2"]);
    }

    #[test]
    fn empty_input() {
        assert_eq!(Summary::of(""), Summary::default());
    }

    #[test]
    fn parse_errors_read_on_one_line_without_addresses() {
        let raw = "SDP parse: Parse error at PointerOffset(0x7fb4d8000f60)\nUnexpected `g`\nExpected `v`\nsdp line";
        assert_eq!(
            tidy_parse_error(raw),
            "SDP parse: Parse error; Unexpected `g`; Expected `v`; sdp line"
        );
    }
}
