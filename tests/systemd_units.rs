//! The systemd units under `systemd/`: exposure scores from `systemd-analyze security`, a
//! clean `systemd-analyze verify`, and the sysusers.d and tmpfiles.d entries applied to a
//! scratch root. Needs systemd's tools (scripts/install-image-deps.sh installs them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Highest accepted exposure score (systemd-analyze prints one decimal).
const MAX_EXPOSURE: f64 = 1.5;

fn systemd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?} ({e}); install systemd with scripts/install-image-deps.sh")
    })
}

/// A unit as it would be installed, with `/usr/bin/<name>` pointing at a real executable
/// (verify checks that ExecStart= can be executed) and optional drop-ins.
fn staged_unit(dir: &Path, unit: &str, dropins: &[&str]) -> PathBuf {
    let text = std::fs::read_to_string(systemd_dir().join(unit)).unwrap();
    let text = text
        .replace(
            "/usr/bin/hkmsd ",
            &format!("{} ", env!("CARGO_BIN_EXE_hkmsd")),
        )
        // Any executable stands in for the gateway, so this check does not need its build.
        .replace("/usr/bin/hkms-gateway ", "/bin/true ");
    let path = dir.join(unit);
    std::fs::write(&path, text).unwrap();
    if !dropins.is_empty() {
        let d = dir.join(format!("{unit}.d"));
        std::fs::create_dir_all(&d).unwrap();
        for name in dropins {
            std::fs::copy(systemd_dir().join(format!("{unit}.d/{name}")), d.join(name)).unwrap();
        }
    }
    path
}

/// `systemd-analyze security --offline=true` of a unit file: the overall exposure.
fn exposure(unit: &Path) -> f64 {
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no exposure level for {}:\n{text}{}",
                unit.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        });
    line.split(':')
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse {line:?}"))
}

/// `systemd-analyze verify`: exit status and everything it printed on stderr.
fn verify(units: &[PathBuf]) -> (bool, String) {
    let out = run(Command::new("systemd-analyze")
        .args(["verify", "--no-pager"])
        .args(units));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_unit_and_dropin_scores_at_most_1_5() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for (unit, dropins) in [
        ("hkmsd.service", &[][..]),
        ("hkms-gateway.service", &[]),
        ("hkmsd.service", &["usb-hsm.conf"]),
        ("hkmsd.service", &["pcie-hsm.conf"]),
        ("hkmsd.service", &["network-hsm.conf"]),
        ("hkmsd.service", &["metrics.conf"]),
    ] {
        let case = dir.path().join(format!("case{}", seen.len()));
        std::fs::create_dir_all(&case).unwrap();
        let path = staged_unit(&case, unit, dropins);
        let score = exposure(&path);
        eprintln!("{unit} {dropins:?}: exposure {score}");
        assert!(
            score <= MAX_EXPOSURE,
            "{unit} with {dropins:?} scores {score} > {MAX_EXPOSURE}"
        );
        seen.push(score);
    }
    // The plain daemon unit (Unix socket only, file-backed tokens) meets the 1.2 goal.
    assert!(seen[0] <= 1.2, "hkmsd.service scores {}", seen[0]);
    // The drop-ins really change the sandbox (otherwise they would not be applied here).
    assert!(
        seen[2] > seen[0] && seen[4] > seen[0] && seen[5] > seen[0],
        "{seen:?}"
    );
}

#[test]
fn the_score_check_can_fail() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.service");
    std::fs::write(&plain, "[Service]\nExecStart=/bin/true\n").unwrap();
    assert!(exposure(&plain) > 5.0, "an unhardened unit must score high");
}

#[test]
fn units_verify_without_any_warning() {
    let dir = tempfile::tempdir().unwrap();
    let units = vec![
        staged_unit(
            dir.path(),
            "hkmsd.service",
            &[
                "usb-hsm.conf",
                "pcie-hsm.conf",
                "network-hsm.conf",
                "metrics.conf",
            ],
        ),
        staged_unit(dir.path(), "hkms-gateway.service", &[]),
        staged_unit(dir.path(), "hkms-gateway.socket", &[]),
    ];
    let (ok, stderr) = verify(&units);
    assert!(ok && stderr.trim().is_empty(), "verify: {stderr}");

    // Control: an unknown key is reported on stderr (verify still exits 0 for it).
    let bad = dir.path().join("typo.service");
    std::fs::write(
        &bad,
        "[Service]\nExecStart=/bin/true\nProtectSytem=strict\n",
    )
    .unwrap();
    let (_, stderr) = verify(&[bad]);
    assert!(stderr.contains("ProtectSytem"), "verify: {stderr}");
}

#[test]
fn appliance_image_units_verify_without_any_warning() {
    let dir = tempfile::tempdir().unwrap();
    let files = Path::new(env!("CARGO_MANIFEST_DIR")).join("image/files");
    let mut units = vec![staged_unit(dir.path(), "hkmsd.service", &[])];
    for name in [
        "hkms-firstboot.service",
        "hkms-init.service",
        "hkms-gateway-firstboot.service",
        "hkms-selftest.service",
    ] {
        let text = std::fs::read_to_string(files.join(name)).unwrap();
        // The programs exist only inside the image: stand-ins keep verify's checks on
        // everything else.
        let text = text
            .replace("/usr/lib/hkms/firstboot-tokens.sh", "/bin/true")
            .replace("/usr/lib/hkms/selftest.sh", "/bin/true")
            .replace("/usr/lib/hkms/firstboot-gateway.sh", "/bin/true")
            .replace("/usr/bin/hkms ", "/bin/true ");
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        units.push(path);
    }
    let (ok, stderr) = verify(&units);
    assert!(ok && stderr.trim().is_empty(), "verify: {stderr}");
}

#[test]
fn daemon_unit_matches_the_daemon() {
    let unit = std::fs::read_to_string(systemd_dir().join("hkmsd.service")).unwrap();
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "User=hkms",
        "RuntimeDirectory=hkms",
        "StateDirectory=hkms",
        "LimitMEMLOCK=infinity",
        "LimitCORE=0",
        "CapabilityBoundingSet=",
        "NoNewPrivileges=yes",
        // hkmsd installs its own filter: the systemd filter must let it.
        "SystemCallFilter=@system-service seccomp",
    ] {
        assert!(has(line), "hkmsd.service lacks {line:?}");
    }
    let watchdog = unit
        .lines()
        .find_map(|l| l.strip_prefix("WatchdogSec="))
        .expect("WatchdogSec= set");
    assert!(watchdog.ends_with('s'));
    // The example configuration puts the socket and the store where the unit allows.
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/hkmsd.example.toml"),
    )
    .unwrap();
    assert!(example.contains("socket = \"/run/hkms/hkmsd.sock\""));
    assert!(example.contains("path = \"/var/lib/hkms/store\""));
}

#[test]
fn gateway_units_match_the_gateway() {
    let unit = std::fs::read_to_string(systemd_dir().join("hkms-gateway.service")).unwrap();
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=hkms-gateway",
        "StandardInput=socket",
        "LimitCORE=0",
        // No capability: systemd binds port 443 (hkms-gateway.socket).
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "NoNewPrivileges=yes",
        "SystemCallFilter=@system-service seccomp",
    ] {
        assert!(has(line), "hkms-gateway.service lacks {line:?}");
    }
    assert!(unit.lines().any(|l| l.starts_with("WatchdogSec=")));
    // The socket unit listens where the example configuration's private endpoint does.
    let socket = std::fs::read_to_string(systemd_dir().join("hkms-gateway.socket")).unwrap();
    let port = socket
        .lines()
        .find_map(|l| l.strip_prefix("ListenStream="))
        .expect("ListenStream= set");
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/hkms-gateway.example.toml"),
    )
    .unwrap();
    let config = hkms::gateway::config::GatewayConfig::parse(&example).unwrap();
    assert_eq!(port, config.private.listen.port().to_string());
}

fn passwd_entry(root: &Path, file: &str, name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root.join("etc").join(file)).unwrap();
    text.lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {file}:\n{text}"))
        .split(':')
        .map(str::to_owned)
        .collect()
}

#[test]
fn sysusers_and_tmpfiles_create_users_and_private_directories() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    let out = run(Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg(systemd_dir().join("sysusers.d/hkms.conf")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hkms = passwd_entry(root.path(), "passwd", "hkms");
    let gateway = passwd_entry(root.path(), "passwd", "hkms-gateway");
    assert_ne!(hkms[2], "0");
    assert_ne!(hkms[2], gateway[2]);
    assert_eq!(hkms[6], "/usr/sbin/nologin");
    let group = passwd_entry(root.path(), "group", "hkms");
    assert_eq!(group[3], "hkms-gateway", "the gateway may reach the socket");

    let out = run(Command::new("systemd-tmpfiles")
        .arg(format!("--root={}", root.path().display()))
        .arg("--create")
        .arg(systemd_dir().join("tmpfiles.d/hkms.conf")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uid: u32 = hkms[2].parse().unwrap();
    let gid: u32 = group[2].parse().unwrap();
    for (path, mode, owner) in [
        ("etc/hkms", 0o750, 0),
        ("etc/hkms/pins", 0o750, 0),
        ("var/lib/hkms", 0o700, uid),
        ("var/lib/hkms/audit", 0o700, uid),
        ("var/lib/hkms/softhsm/tokens", 0o700, uid),
    ] {
        let m = std::fs::metadata(root.path().join(path)).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, mode, "{path}");
        assert_eq!(m.uid(), owner, "{path} owner");
        assert!(m.gid() == gid || m.gid() == 0, "{path} group");
    }
}
