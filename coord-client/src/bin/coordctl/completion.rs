//! `coordctl completion SHELL`: a shell completion script, generated from the
//! clap command line by `clap_complete`, so it never drifts from the flags.

use clap::CommandFactory;
use clap_complete::Shell;
use serde_json::json;

use crate::args::Cli;
use crate::output::Outcome;

/// The completion script for `shell`; with `--json` it comes as
/// `{"shell": ..., "script": ...}`.
pub fn run(shell: Shell) -> Outcome {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "coordctl", &mut script);
    let json = json!({"shell": shell.to_string(), "script": String::from_utf8_lossy(&script)});
    Outcome::Rendered {
        text: script.into(),
        json,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_name_the_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let Outcome::Rendered { text, json } = run(shell) else {
                panic!("not rendered");
            };
            let script = String::from_utf8_lossy(&text);
            for word in ["coordctl", "services", "queue", "completion"] {
                assert!(script.contains(word), "{shell}: no {word}");
            }
            assert_eq!(json["shell"], shell.to_string());
        }
    }
}
