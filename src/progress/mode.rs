//! How a building run shows its progress (`--progress`, `-q`, `CIP_PROGRESS`), and how `auto`
//! resolves.
use clap::ValueEnum;

/// The display modes of `--progress` (BuildKit's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    /// `tty` on a terminal when `CI` is unset, `plain` otherwise
    Auto,
    /// A live display: a line per running step with its current Dockerfile step, the queued count
    Tty,
    /// The builders' output as it comes, each line prefixed `[image platform]`; nothing redraws
    Plain,
    /// Errors and the final one-line result only
    Quiet,
}

impl Progress {
    /// Parses a `CIP_PROGRESS` value (case-insensitive).
    pub fn parse(value: &str) -> Result<Progress, String> {
        Progress::from_str(value.trim(), true)
            .map_err(|_| format!("{value:?} is not one of auto, tty, plain, quiet"))
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
    }
}
