//! Sending the RTC thread's datagrams with few system calls.
//!
//! A frame for N viewers is N times a handful of datagrams; one `sendto(2)` each made the
//! kernel's send path the largest cost of a busy server. [`Batch`] gathers what one round of
//! polling produced and hands it to the kernel with `sendmmsg(2)`, and each viewer's run of
//! equal-sized datagrams (the packets of one frame) as a single UDP GSO message
//! (`UDP_SEGMENT`), which the kernel or the network card cuts up again. GSO is given up for
//! good, with a log line, the first time the kernel refuses it; plain `sendmmsg` stays.

use std::io;
use std::mem;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

/// Datagrams gathered before [`Batch::push`] flushes on its own.
const MAX_QUEUED: usize = 1024;
/// The kernel's limit on segments in one GSO message (`UDP_MAX_SEGMENTS`).
const MAX_SEGMENTS: usize = 64;
/// Bytes in one GSO message: an IP datagram's payload must stay below 64 KiB.
const MAX_GSO_BYTES: usize = 60_000;
/// `UDP_SEGMENT` from `linux/udp.h` (the libc crate does not name it for every target).
const UDP_SEGMENT: libc::c_int = 103;

/// Datagrams waiting to be sent on one socket.
pub(crate) struct Batch {
    socket: UdpSocket,
    queue: Vec<(SocketAddr, Vec<u8>)>,
    gso: bool,
}

impl Batch {
    pub(crate) fn new(socket: UdpSocket) -> Batch {
        Batch {
            socket,
            queue: Vec::with_capacity(MAX_QUEUED),
            gso: cfg!(target_os = "linux"),
        }
    }

    /// Queues one datagram; sends the queue when it is full.
    pub(crate) fn push(&mut self, destination: SocketAddr, contents: Vec<u8>) {
        self.queue.push((destination, contents));
        if self.queue.len() >= MAX_QUEUED {
            self.flush();
        }
    }

    /// Sends everything queued. A datagram the kernel refuses is dropped, as the network
    /// would drop it; WebRTC recovers.
    pub(crate) fn flush(&mut self) {
        let queue = mem::take(&mut self.queue);
        let mut rest = &queue[..];
        while !rest.is_empty() {
            let groups = self.groups(rest);
            let sent = self.send_groups(rest, &groups);
            let datagrams: usize = groups.iter().take(sent.max(1)).sum();
            rest = &rest[datagrams.min(rest.len())..];
        }
        self.queue = queue;
        self.queue.clear();
    }

    /// How many datagrams from the start of `queue` go in each message: a run to one address
    /// of one size (the last may be shorter), or 1 each without GSO.
    fn groups(&self, queue: &[(SocketAddr, Vec<u8>)]) -> Vec<usize> {
        let mut groups = Vec::new();
        let mut i = 0;
        while i < queue.len() && groups.len() < MAX_QUEUED {
            let (destination, first) = &queue[i];
            let mut count = 1;
            let mut bytes = first.len();
            if self.gso {
                while let Some((next_destination, next)) = queue.get(i + count) {
                    if next_destination != destination
                        || next.len() > first.len()
                        || count >= MAX_SEGMENTS
                        || bytes + next.len() > MAX_GSO_BYTES
                    {
                        break;
                    }
                    count += 1;
                    bytes += next.len();
                    if next.len() < first.len() {
                        break;
                    }
                }
            }
            groups.push(count);
            i += count;
        }
        groups
    }

    /// Sends the messages `groups` make of `queue`'s head; answers how many messages are done
    /// with (sent, or dropped on an error).
    #[cfg(target_os = "linux")]
    fn send_groups(&mut self, queue: &[(SocketAddr, Vec<u8>)], groups: &[usize]) -> usize {
        let mut addresses: Vec<(libc::sockaddr_storage, libc::socklen_t)> =
            Vec::with_capacity(groups.len());
        let mut iovecs: Vec<libc::iovec> = Vec::with_capacity(groups.iter().sum());
        let mut controls: Vec<Control> = Vec::with_capacity(groups.len());
        let mut i = 0;
        for &count in groups {
            addresses.push(sockaddr(queue[i].0));
            for (_, contents) in &queue[i..i + count] {
                iovecs.push(libc::iovec {
                    iov_base: contents.as_ptr() as *mut libc::c_void,
                    iov_len: contents.len(),
                });
            }
            controls.push(Control::segment(queue[i].1.len() as u16));
            i += count;
        }
        // The vectors above are complete: the pointers below stay valid.
        let mut messages: Vec<libc::mmsghdr> = Vec::with_capacity(groups.len());
        let mut first_iovec = 0;
        for (n, &count) in groups.iter().enumerate() {
            // SAFETY: an all-zero msghdr is valid (no name, no data, no control).
            let mut header: libc::msghdr = unsafe { mem::zeroed() };
            header.msg_name = &mut addresses[n].0 as *mut _ as *mut libc::c_void;
            header.msg_namelen = addresses[n].1;
            header.msg_iov = iovecs[first_iovec..].as_mut_ptr();
            header.msg_iovlen = count as _;
            if count > 1 {
                header.msg_control = controls[n].bytes.as_mut_ptr() as *mut libc::c_void;
                header.msg_controllen = controls[n].len as _;
            }
            messages.push(libc::mmsghdr {
                msg_hdr: header,
                msg_len: 0,
            });
            first_iovec += count;
        }
        let fd = self.socket.as_raw_fd();
        // SAFETY: every message points at buffers that live until the call returns.
        let sent = unsafe { libc::sendmmsg(fd, messages.as_mut_ptr(), messages.len() as _, 0) };
        if sent > 0 {
            return sent as usize;
        }
        let err = io::Error::last_os_error();
        let failed = groups[0];
        if failed > 1 && matches!(err.raw_os_error(), Some(libc::EIO | libc::EINVAL)) {
            // Perhaps the route's device cannot take segmented sends: try one by one, and if
            // that works, keep to it from now on.
            let sent = queue[..failed]
                .iter()
                .filter(|(destination, contents)| {
                    self.socket.send_to(contents, destination).is_ok()
                })
                .count();
            if sent > 0 {
                tracing::warn!("UDP GSO refused ({err}); sending datagrams one by one from now on");
                self.gso = false;
            }
        } else {
            tracing::trace!("UDP send to {}: {err}", queue[0].0);
        }
        1
    }

    #[cfg(not(target_os = "linux"))]
    fn send_groups(&mut self, queue: &[(SocketAddr, Vec<u8>)], groups: &[usize]) -> usize {
        for (destination, contents) in &queue[..groups[0]] {
            if let Err(err) = self.socket.send_to(contents, destination) {
                tracing::trace!("UDP send to {destination}: {err}");
            }
        }
        1
    }
}

/// A control message carrying `UDP_SEGMENT`.
#[cfg(target_os = "linux")]
struct Control {
    /// Aligned for `cmsghdr`.
    bytes: [u64; 4],
    len: usize,
}

#[cfg(target_os = "linux")]
impl Control {
    fn segment(size: u16) -> Control {
        let mut control = Control {
            bytes: [0; 4],
            len: 0,
        };
        // SAFETY: CMSG_SPACE of a u16 (24 bytes on 64-bit Linux) fits the 32-byte buffer, and
        // the header written is the buffer's first, as CMSG_FIRSTHDR would find it.
        unsafe {
            let space = libc::CMSG_SPACE(mem::size_of::<u16>() as u32) as usize;
            debug_assert!(space <= mem::size_of_val(&control.bytes));
            let header = control.bytes.as_mut_ptr() as *mut libc::cmsghdr;
            (*header).cmsg_level = libc::SOL_UDP;
            (*header).cmsg_type = UDP_SEGMENT;
            (*header).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(header) as *mut u16, size);
            control.len = space;
        }
        control
    }
}

#[cfg(target_os = "linux")]
fn sockaddr(address: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match address {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn receiver() -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        socket
    }

    fn receive_all(socket: &UdpSocket, count: usize) -> Vec<Vec<u8>> {
        let mut buf = [0u8; 2048];
        (0..count)
            .map(|_| {
                let (len, _) = socket.recv_from(&mut buf).expect("a datagram");
                buf[..len].to_vec()
            })
            .collect()
    }

    /// Mixed sizes and two receivers, interleaved: each receives its own datagrams, whole and
    /// in order, whether they left one by one or segmented.
    #[test]
    fn every_datagram_arrives_whole_and_in_order() {
        let (a, b) = (receiver(), receiver());
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut batch = Batch::new(sender);
        let mut sent_a = Vec::new();
        let mut sent_b = Vec::new();
        for frame in 0..5u8 {
            for (i, size) in [1160, 1160, 1160, 1160, 700, 90].into_iter().enumerate() {
                let datagram = vec![frame * 16 + i as u8; size];
                batch.push(a.local_addr().unwrap(), datagram.clone());
                sent_a.push(datagram);
            }
            let datagram = vec![200 + frame; 1200];
            batch.push(b.local_addr().unwrap(), datagram.clone());
            sent_b.push(datagram);
        }
        batch.flush();
        assert_eq!(receive_all(&a, sent_a.len()), sent_a);
        assert_eq!(receive_all(&b, sent_b.len()), sent_b);
        assert!(batch.queue.is_empty());
        // Loopback takes segmented sends: nothing fell back to one by one.
        assert_eq!(batch.gso, cfg!(target_os = "linux"));
    }

    #[test]
    fn runs_of_equal_size_form_one_message() {
        let batch = Batch::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let to = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let queue = vec![
            (to(1), vec![0; 100]),
            (to(1), vec![0; 100]),
            (to(1), vec![0; 40]),
            (to(1), vec![0; 100]),
            (to(2), vec![0; 100]),
            (to(2), vec![0; 120]),
        ];
        let groups = batch.groups(&queue);
        if batch.gso {
            assert_eq!(groups, vec![3, 1, 1, 1]);
        } else {
            assert_eq!(groups, vec![1; 6]);
        }
        let many: Vec<_> = (0..100).map(|_| (to(3), vec![0; 1000])).collect();
        assert!(batch.groups(&many).iter().all(|&n| n <= MAX_SEGMENTS));
    }

    /// A datagram the kernel refuses (to port 0) is dropped; the others still go.
    #[test]
    fn a_refused_datagram_does_not_stop_the_rest() {
        let a = receiver();
        let mut batch = Batch::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        batch.push(SocketAddr::from(([127, 0, 0, 1], 0)), vec![1; 10]);
        batch.push(a.local_addr().unwrap(), vec![2; 10]);
        batch.flush();
        assert_eq!(receive_all(&a, 1), vec![vec![2; 10]]);
    }
}
