//! Which lines of a builder's output name the Dockerfile step it is on: buildah's and podman's
//! `STEP 3/7: RUN ...`, BuildKit's plain `#5 [2/3] RUN ...` (or `#5 [stage 2/3] RUN ...`).

/// Whether `line` starts a Dockerfile step.
pub fn is_step_line(line: &str) -> bool {
    buildah_step(line) || buildkit_step(line)
}

fn buildah_step(line: &str) -> bool {
    line.strip_prefix("STEP ")
        .and_then(|rest| rest.split_once(": "))
        .is_some_and(|(n, _)| is_fraction(n))
}

fn buildkit_step(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('#') else {
        return false;
    };
    let Some((id, rest)) = rest.split_once(' ') else {
        return false;
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Some((bracket, _)) = rest.strip_prefix('[').and_then(|r| r.split_once("] ")) else {
        return false;
    };
    // `[2/3]`, or `[stage-name 2/3]`.
    bracket.rsplit(' ').next().is_some_and(is_fraction)
}

/// `N/M`, both numbers.
fn is_fraction(s: &str) -> bool {
    s.split_once('/').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_lines_of_buildah_and_buildkit() {
        for line in [
            "STEP 3/7: RUN echo hello > /hello.txt",
            "STEP 1/2: FROM scratch",
            "#5 [2/3] RUN echo hello",
            "#12 [build 4/9] COPY . /src",
        ] {
            assert!(is_step_line(line), "{line}");
        }
        for line in [
            "COMMIT localhost/x:1",
            "#5 DONE 0.3s",
            "#1 [internal] load build definition from Dockerfile",
            "STEP x/7: RUN",
            "Getting image source signatures",
        ] {
            assert!(!is_step_line(line), "{line}");
        }
    }
}
