//! How a building run shows its progress (`--progress`, `-q`, `CIP_PROGRESS`), and how `auto`
//! resolves.
/// The display modes of `--progress` (BuildKit's names; [`Progress::ALL`] says what each shows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Auto,
    Tty,
    Plain,
    Quiet,
}

impl Progress {
    /// Every mode with its name and what it shows, in the order `--help` lists them.
    pub const ALL: [(Progress, &'static str, &'static str); 4] = [
        (
            Progress::Auto,
            "auto",
            "`tty` on a terminal when `CI` is unset, `plain` otherwise",
        ),
        (
            Progress::Tty,
            "tty",
            "A live display: a line per running step with its current Dockerfile step, the queued count",
        ),
        (
            Progress::Plain,
            "plain",
            "The builders' output as it comes, each line prefixed `[image platform]`; nothing redraws",
        ),
        (
            Progress::Quiet,
            "quiet",
            "Errors and the final one-line result only",
        ),
    ];

    /// The mode's name, as `--progress` and `CIP_PROGRESS` spell it.
    pub fn name(self) -> &'static str {
        Progress::ALL
            .iter()
            .find(|(p, _, _)| *p == self)
            .map_or("auto", |(_, name, _)| name)
    }

    /// Parses a `CIP_PROGRESS` value (case-insensitive).
    pub fn parse(value: &str) -> Result<Progress, String> {
        let wanted = value.trim();
        Progress::ALL
            .iter()
            .find(|(_, name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(p, _, _)| *p)
            .ok_or_else(|| format!("{value:?} is not one of auto, tty, plain, quiet"))
    }
}

impl std::str::FromStr for Progress {
    type Err = String;
    fn from_str(s: &str) -> Result<Progress, String> {
        Progress::parse(s)
    }
}

/// The mode a run uses: the first choice given, in order of precedence (the flag, then the
/// environment, ...), else `auto`; `auto` is `tty` only where a person watches a terminal.
pub fn resolve(choices: &[Option<Progress>], stderr_is_term: bool, ci: bool) -> Progress {
    match choices.iter().flatten().next().copied() {
        Some(Progress::Auto) | None if stderr_is_term && !ci => Progress::Tty,
        Some(Progress::Auto) | None => Progress::Plain,
        Some(chosen) => chosen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Progress::*;

    #[test]
    fn the_first_choice_wins_and_auto_follows_the_terminal() {
        assert_eq!(resolve(&[Some(Quiet), Some(Plain)], true, false), Quiet);
        assert_eq!(resolve(&[None, Some(Plain)], true, false), Plain);
        assert_eq!(resolve(&[None, None], true, false), Tty);
        assert_eq!(resolve(&[Some(Auto), Some(Quiet)], true, false), Tty);
        assert_eq!(resolve(&[None], true, true), Plain, "CI set");
        assert_eq!(resolve(&[None], false, false), Plain, "not a terminal");
        assert_eq!(resolve(&[Some(Tty)], false, true), Tty);
        assert_eq!(Progress::parse(" PLAIN"), Ok(Plain));
        assert!(Progress::parse("fancy").unwrap_err().contains("auto, tty"));
        for (mode, name, _) in Progress::ALL {
            assert_eq!(mode.name(), name);
            assert_eq!(name.parse::<Progress>(), Ok(mode));
        }
    }
}
