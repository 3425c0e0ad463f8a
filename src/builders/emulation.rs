//! Whether the kernel can run binaries of the platforms a run builds but the builder does not run
//! natively: `RUN` steps of an arm64 image on an amd64 builder need a binfmt_misc entry handing arm64
//! ELF files to qemu. Checked before any build starts, so a missing emulator is one clear message
//! instead of "exec format error" in the middle of a run.
//!
//! The binfmt_misc directory is `/proc/sys/fs/binfmt_misc`, or `$CIP_BINFMT_DIR` when set.

use std::fs;
use std::path::{Path, PathBuf};

use crate::platform::Platform;

/// Environment variable naming another binfmt_misc directory (used by tests).
pub const BINFMT_DIR_ENV: &str = "CIP_BINFMT_DIR";
/// The kernel's binfmt_misc directory (a run of cip passes `$CIP_BINFMT_DIR` to [`check_in`]
/// instead when it is set).
pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// The qemu name of an OCI architecture and the ELF header that identifies its binaries.
struct Arch {
    oci: &'static str,
    qemu: &'static str,
    /// ELF class: 1 = 32-bit, 2 = 64-bit.
    class: u8,
    little_endian: bool,
    machine: u16,
}

#[rustfmt::skip]
const ARCHS: &[Arch] = &[
    Arch { oci: "amd64", qemu: "x86_64", class: 2, little_endian: true, machine: 0x3e },
    Arch { oci: "arm64", qemu: "aarch64", class: 2, little_endian: true, machine: 0xb7 },
    Arch { oci: "arm", qemu: "arm", class: 1, little_endian: true, machine: 0x28 },
    Arch { oci: "386", qemu: "i386", class: 1, little_endian: true, machine: 0x03 },
    Arch { oci: "ppc64le", qemu: "ppc64le", class: 2, little_endian: true, machine: 0x15 },
    Arch { oci: "ppc64", qemu: "ppc64", class: 2, little_endian: false, machine: 0x15 },
    Arch { oci: "s390x", qemu: "s390x", class: 2, little_endian: false, machine: 0x16 },
    Arch { oci: "riscv64", qemu: "riscv64", class: 2, little_endian: true, machine: 0xf3 },
    Arch { oci: "mips64le", qemu: "mips64el", class: 2, little_endian: true, machine: 0x08 },
    Arch { oci: "mips64", qemu: "mips64", class: 2, little_endian: false, machine: 0x08 },
    Arch { oci: "mipsle", qemu: "mipsel", class: 1, little_endian: true, machine: 0x08 },
    Arch { oci: "mips", qemu: "mips", class: 1, little_endian: false, machine: 0x08 },
    Arch { oci: "loong64", qemu: "loongarch64", class: 2, little_endian: true, machine: 0x102 },
];

fn arch_info(oci: &str) -> Option<&'static Arch> {
    ARCHS.iter().find(|a| a.oci == oci)
}

/// The qemu name of an OCI architecture (`arm64` -> `aarch64`), or the name itself.
pub fn qemu_arch(oci: &str) -> &str {
    arch_info(oci).map(|a| a.qemu).unwrap_or(oci)
}

/// Whether a builder running `native` can run `platform` without emulation: same OS and
/// architecture, or 386 on an amd64 kernel.
pub fn runs_natively(platform: &Platform, native: &[Platform]) -> bool {
    native.iter().any(|n| {
        n.os == platform.os
            && (n.arch == platform.arch || (n.arch == "amd64" && platform.arch == "386"))
    })
}

/// Checks that every platform in `platforms` either runs natively on a builder running `native`,
/// or has an enabled binfmt_misc emulator in [`BINFMT_DIR`]. The error names the platforms and
/// gives the fix.
pub fn check(platforms: &[Platform], native: &[Platform]) -> Result<(), String> {
    check_in(Path::new(BINFMT_DIR), platforms, native)
}

/// [`check`] against the binfmt_misc directory `dir`.
pub fn check_in(dir: &Path, platforms: &[Platform], native: &[Platform]) -> Result<(), String> {
    let native_text = native
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut foreign_os = Vec::new();
    let mut missing: Vec<&Platform> = Vec::new();
    let mut disabled: Vec<(&Platform, PathBuf)> = Vec::new();
    let entries = read_entries(dir);
    let globally_disabled = fs::read_to_string(dir.join("status"))
        .map(|s| s.trim() == "disabled")
        .unwrap_or(false);

    let mut unique: Vec<&Platform> = Vec::new();
    for p in platforms {
        if !unique.contains(&p) {
            unique.push(p);
        }
    }
    for p in unique {
        if runs_natively(p, native) {
            continue;
        }
        if !native.iter().any(|n| n.os == p.os) {
            foreign_os.push(p.to_string());
            continue;
        }
        let found: Vec<&Entry> = entries.iter().filter(|e| e.handles(&p.arch)).collect();
        match found.iter().find(|e| e.enabled) {
            Some(_) if !globally_disabled => {}
            Some(e) => disabled.push((p, e.path.clone())),
            None => match found.first() {
                Some(e) => disabled.push((p, e.path.clone())),
                None => missing.push(p),
            },
        }
    }

    let mut problems = Vec::new();
    if !foreign_os.is_empty() {
        problems.push(format!(
            "cannot build {} with a builder running {native_text}: emulation only covers other \
             architectures of the same OS; build these on a matching node or drop them from :platforms",
            foreign_os.join(", ")
        ));
    }
    if globally_disabled && !disabled.is_empty() {
        problems.push(format!(
            "emulation for {} is registered but binfmt_misc is disabled as a whole ({}); enable it: \
             echo 1 > {}",
            list(disabled.iter().map(|(p, _)| *p)),
            dir.join("status").display(),
            dir.join("status").display()
        ));
    } else {
        for (p, entry) in &disabled {
            problems.push(format!(
                "emulation for {p} is registered but disabled ({}); enable it: echo 1 > {}",
                entry.display(),
                entry.display()
            ));
        }
    }
    if !missing.is_empty() {
        problems.push(missing_text(dir, &missing, &native_text));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n\n"))
    }
}

fn list<'a>(ps: impl Iterator<Item = &'a Platform>) -> String {
    ps.map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
}

fn missing_text(dir: &Path, missing: &[&Platform], native_text: &str) -> String {
    let qemus: Vec<&str> = {
        let mut q: Vec<&str> = missing.iter().map(|p| qemu_arch(&p.arch)).collect();
        q.sort_unstable();
        q.dedup();
        q
    };
    let mounted = dir.join("register").exists();
    let mut s = format!(
        "emulation is missing for {}: this builder runs {native_text} natively and the kernel has \
         no binfmt_misc entry (in {}) for {}, so RUN steps would fail with \"exec format error\".\n\
         Fix, as root on Debian/Ubuntu:\n  apt-get install -y qemu-user-static\n",
        list(missing.iter().copied()),
        dir.display(),
        qemus
            .iter()
            .map(|q| format!("qemu-{q}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !mounted {
        s.push_str(&format!(
            "  mount -t binfmt_misc binfmt_misc {BINFMT_DIR}   # {} has no `register` file: not mounted\n",
            dir.display()
        ));
    }
    for q in &qemus {
        s.push_str(&format!(
            "  cat /usr/lib/binfmt.d/qemu-{q}.conf > {BINFMT_DIR}/register   # or: systemctl restart systemd-binfmt\n"
        ));
    }
    let docker_archs: Vec<&str> = {
        let mut a: Vec<&str> = missing.iter().map(|p| p.arch.as_str()).collect();
        a.sort_unstable();
        a.dedup();
        a
    };
    s.push_str(&format!(
        "Elsewhere (e.g. a Docker host or CI runner): docker run --privileged --rm tonistiigi/binfmt --install {}\n\
         Or build only this machine's platform (--only-local-platform), or drop {} from the images' :platforms.",
        docker_archs.join(","),
        list(missing.iter().copied())
    ));
    s
}

/// One registered binfmt_misc handler.
#[derive(Debug)]
struct Entry {
    path: PathBuf,
    name: String,
    enabled: bool,
    interpreter: String,
    /// Offset of the magic (0 for ELF handlers) and the magic bytes.
    offset: u64,
    magic: Vec<u8>,
}

impl Entry {
    fn parse(path: PathBuf, text: &str) -> Entry {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut lines = text.lines();
        let enabled = lines.next().map(str::trim) == Some("enabled");
        let mut interpreter = String::new();
        let mut offset = 0;
        let mut magic = Vec::new();
        for line in lines {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "interpreter" => interpreter = value.trim().to_string(),
                "offset" => offset = value.trim().parse().unwrap_or(u64::MAX),
                "magic" => magic = decode_hex(value.trim()),
                _ => {}
            }
        }
        Entry {
            path,
            name,
            enabled,
            interpreter,
            offset,
            magic,
        }
    }

    /// Whether this handler runs binaries of the OCI architecture `arch`: by its name or its
    /// interpreter (`qemu-aarch64`, `qemu-aarch64-static`, Debian's `qemu-binfmt/aarch64-binfmt-P`),
    /// or by the ELF header its magic matches.
    fn handles(&self, arch: &str) -> bool {
        let q = qemu_arch(arch);
        let qemu_name = format!("qemu-{q}");
        let named = |s: &str| {
            s == qemu_name
                || s.strip_prefix(&qemu_name)
                    .is_some_and(|r| r.starts_with('-'))
        };
        let interp = self.interpreter.rsplit('/').next().unwrap_or("");
        if named(&self.name)
            || named(interp)
            || interp
                .strip_prefix(q)
                .is_some_and(|r| r.starts_with("-binfmt"))
        {
            return true;
        }
        arch_info(arch).is_some_and(|a| self.matches_elf(a))
    }

    fn matches_elf(&self, a: &Arch) -> bool {
        if self.offset != 0 || self.magic.len() < 20 || !self.magic.starts_with(b"\x7fELF") {
            return false;
        }
        let m = &self.magic;
        let machine = if a.little_endian {
            u16::from_le_bytes([m[18], m[19]])
        } else {
            u16::from_be_bytes([m[18], m[19]])
        };
        m[4] == a.class && m[5] == if a.little_endian { 1 } else { 2 } && machine == a.machine
    }
}

fn decode_hex(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    bytes
        .chunks(2)
        .map_while(|c| {
            std::str::from_utf8(c)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

fn read_entries(dir: &Path) -> Vec<Entry> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name();
            n != "register" && n != "status"
        })
        .filter_map(|e| {
            let path = e.path();
            fs::read_to_string(&path)
                .ok()
                .map(|t| Entry::parse(path, &t))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn native_needs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let amd = [p("linux/amd64")];
        assert!(check_in(dir.path(), &[p("linux/amd64"), p("linux/386")], &amd).is_ok());
    }

    #[test]
    fn missing_entry_gives_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_in(
            dir.path(),
            &[p("linux/arm64"), p("linux/amd64")],
            &[p("linux/amd64")],
        )
        .unwrap_err();
        assert!(err.contains("linux/arm64"), "{err}");
        assert!(!err.contains("linux/amd64:"), "{err}");
        assert!(err.contains("qemu-user-static"), "{err}");
        assert!(err.contains("/usr/lib/binfmt.d/qemu-aarch64.conf"), "{err}");
        assert!(err.contains("mount -t binfmt_misc"), "{err}");
        assert!(err.contains("tonistiigi/binfmt --install arm64"), "{err}");
    }

    #[test]
    fn entries_are_recognised_by_name_interpreter_or_magic() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("register"), "").unwrap();
        // Debian's qemu-user-static entry, copied from a real machine.
        fs::write(
            dir.path().join("some-name"),
            "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\n\
             magic 7f454c460201010000000000000000000200b700\n\
             mask ffffffffffffff00fffffffffffffffffeffffff\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("riscv"),
            "enabled\ninterpreter /usr/bin/qemu-riscv64-static\n",
        )
        .unwrap();
        // ELF magic of s390x (big endian, machine 0x16), odd name and interpreter.
        fs::write(
            dir.path().join("zz"),
            "enabled\ninterpreter /opt/emu\noffset 0\nmagic 7f454c4602020100000000000000000000020016\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("qemu-arm"),
            "disabled\ninterpreter /usr/bin/qemu-arm\n",
        )
        .unwrap();
        let amd = [p("linux/amd64")];
        assert!(check_in(
            dir.path(),
            &[p("linux/arm64"), p("linux/riscv64"), p("linux/s390x")],
            &amd
        )
        .is_ok());
        let err = check_in(dir.path(), &[p("linux/arm/v7")], &amd).unwrap_err();
        assert!(
            err.contains("disabled") && err.contains("echo 1 >"),
            "{err}"
        );
        let err = check_in(dir.path(), &[p("linux/ppc64le")], &amd).unwrap_err();
        assert!(err.contains("qemu-ppc64le"), "{err}");
        assert!(!err.contains("mount -t"), "{err}");
        // qemu-arm must not be taken for qemu-armeb or qemu-aarch64.
        let e = Entry::parse(
            PathBuf::from("x"),
            "enabled\ninterpreter /usr/bin/qemu-armeb\n",
        );
        assert!(!e.handles("arm"));
    }

    #[test]
    fn other_os_cannot_be_emulated() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_in(dir.path(), &[p("windows/amd64")], &[p("linux/amd64")]).unwrap_err();
        assert!(err.contains("windows/amd64"), "{err}");
    }
}
