//! `rtcgear export-web`: the default page templates and static files written into a folder,
//! to customise them and serve them with `serve --web-dir`.

/// Writes the files into `dir`, skipping those there already unless `force`, and says which.
pub fn run(dir: &std::path::Path, force: bool) -> anyhow::Result<()> {
    let written = rtcgear_server::export_web_files(dir, force)?;
    if written.is_empty() {
        println!(
            "{} has every file already; nothing written (--force overwrites)",
            dir.display()
        );
    } else {
        for path in &written {
            println!("wrote {}", path.display());
        }
        println!("serve them with: rtcgear serve --web-dir {}", dir.display());
    }
    Ok(())
}
