//! The web data: templates and static files, embedded in the binary or read from a folder.

use std::borrow::Cow;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use minijinja::Environment;

use crate::ServerError;

/// The embedded defaults: `(path under the web folder, contents)`.
const EMBEDDED: [(&str, &str); 7] = [
    (
        "templates/base.html",
        include_str!("../web/templates/base.html"),
    ),
    (
        "templates/index.html",
        include_str!("../web/templates/index.html"),
    ),
    (
        "templates/error.html",
        include_str!("../web/templates/error.html"),
    ),
    ("static/player.js", include_str!("../web/static/player.js")),
    ("static/stamp.js", include_str!("../web/static/stamp.js")),
    ("static/style.css", include_str!("../web/static/style.css")),
    (
        "static/favicon.svg",
        include_str!("../web/static/favicon.svg"),
    ),
];

/// Writes the embedded templates and static files into `dir` (vidgear's
/// `overwrite_default_files`), as a starting point for a custom look.
///
/// Existing files are left alone unless `overwrite` is set; returns the files written.
pub fn export_web_files(dir: &Path, overwrite: bool) -> Result<Vec<PathBuf>, ServerError> {
    let mut written = Vec::new();
    for (path, contents) in EMBEDDED {
        let target = dir.join(path);
        if target.exists() && !overwrite {
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        }
        fs::write(&target, contents).map_err(|e| io_error(&target, e))?;
        written.push(target);
    }
    Ok(written)
}

fn io_error(path: &Path, err: io::Error) -> ServerError {
    ServerError::Io {
        context: format!("writing {}", path.display()),
        source: err,
    }
}

/// Templates and static files, from the user's folder where it has them, else embedded.
pub(crate) struct Web {
    dir: Option<PathBuf>,
    env: Environment<'static>,
}

impl Web {
    pub(crate) fn new(dir: Option<PathBuf>) -> Result<Web, ServerError> {
        if let Some(dir) = &dir {
            if !dir.is_dir() {
                return Err(ServerError::Config(format!(
                    "web folder {} does not exist (make one with `rtcgear export-web {}`)",
                    dir.display(),
                    dir.display()
                )));
            }
        }
        let mut env = Environment::new();
        for (path, contents) in EMBEDDED {
            let Some(name) = path.strip_prefix("templates/") else {
                continue;
            };
            let source = match &dir {
                Some(dir) => match fs::read_to_string(dir.join(path)) {
                    Ok(text) => text,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => contents.to_string(),
                    Err(err) => return Err(io_error(&dir.join(path), err)),
                },
                None => contents.to_string(),
            };
            env.add_template_owned(name.to_string(), source)
                .map_err(|e| ServerError::Config(format!("template {path}: {e}")))?;
        }
        Ok(Web { dir, env })
    }

    /// Renders a template with a context.
    pub(crate) fn render(
        &self,
        name: &str,
        context: minijinja::Value,
    ) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(context)
    }

    /// A static file by its path under `static/`, with its content type; `None` if there is
    /// none or the path tries to leave the folder.
    pub(crate) fn static_file(&self, path: &str) -> Option<(Cow<'static, [u8]>, &'static str)> {
        let relative = Path::new(path);
        if path.is_empty()
            || !relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        {
            return None;
        }
        let content_type = content_type(path);
        if let Some(dir) = &self.dir {
            if let Ok(bytes) = fs::read(dir.join("static").join(relative)) {
                return Some((Cow::Owned(bytes), content_type));
            }
        }
        EMBEDDED
            .iter()
            .find(|(p, _)| p.strip_prefix("static/") == Some(path))
            .map(|(_, contents)| (Cow::Borrowed(contents.as_bytes()), content_type))
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use rtcgear_test_support::tempdir::TempDir;

    use super::*;

    #[test]
    fn embedded_files_are_served_and_paths_cannot_escape() {
        let web = Web::new(None).unwrap();
        let (body, kind) = web.static_file("player.js").unwrap();
        assert!(kind.starts_with("text/javascript"));
        assert!(String::from_utf8_lossy(&body).contains("RTCPeerConnection"));
        assert!(web.static_file("../Cargo.toml").is_none());
        assert!(web.static_file("/etc/passwd").is_none());
        assert!(web.static_file("nope.js").is_none());
    }

    #[test]
    fn export_then_override_one_template() {
        let temp = TempDir::new("web");
        let dir = temp.path().join("export");
        let written = export_web_files(&dir, false).unwrap();
        assert_eq!(written.len(), EMBEDDED.len());
        // A second export leaves the user's files alone.
        fs::write(dir.join("templates/error.html"), "custom {{ status }}").unwrap();
        assert!(export_web_files(&dir, false).unwrap().is_empty());
        fs::remove_file(dir.join("static/style.css")).unwrap();
        let web = Web::new(Some(dir.clone())).unwrap();
        let page = web
            .render("error.html", minijinja::context! { status => 404 })
            .unwrap();
        assert_eq!(page, "custom 404");
        // A file missing from the folder falls back to the embedded one.
        assert!(web.static_file("style.css").is_some());
    }

    #[test]
    fn a_missing_folder_is_a_clear_error() {
        let temp = TempDir::new("web");
        let err = Web::new(Some(temp.path().join("missing")))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
