// Embeds the git revision for nhi_exporter_build_info and --version.
// NHI_EXPORTER_REVISION (e.g. a Docker build arg) wins over git.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=NHI_EXPORTER_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    let rev = std::env::var("NHI_EXPORTER_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=NHI_EXPORTER_REVISION_OR_UNKNOWN={rev}");
}
