//! Usage errors as one line: clap's several-line report (error, tip, usage, "For more
//! information") becomes the single line braid prints for every other error.

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// The one line for a usage error, without the `braid: ` prefix; `None` for what is no error
/// (`--help`, `--version`, the help shown when a command is missing), which clap prints as
/// it is. `cmd` is the whole command tree and `args` the command line, which name the
/// subcommand whose `--help` the line points to.
pub fn one_line(e: &clap::Error, cmd: &clap::Command, args: &[String]) -> Option<String> {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => return None,
        _ => {}
    }
    let help = format!("see '{} --help'", command_path(cmd, args));
    if matches!(e.kind(), ErrorKind::ValueValidation) {
        if let Some(source) = std::error::Error::source(e) {
            return Some(value_error(e, &source.to_string()));
        }
    }
    Some(format!("{} ({help})", message(e)))
}

/// A value its parser refused: the parser's own words when they name the flag (`bad --x`,
/// `--x`) or quote the value (`unknown congestion control 'vegas'`), else prefixed with both.
fn value_error(e: &clap::Error, source: &str) -> String {
    let flat = flatten(source);
    let value = match e.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(s)) => s.as_str(),
        _ => "",
    };
    let quoted = !value.is_empty()
        && (flat.contains(&format!("'{value}'")) || flat.contains(&format!("{value:?}")));
    if flat.starts_with("bad ") || flat.starts_with("--") || quoted {
        return flat;
    }
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.as_str(),
        _ => "",
    };
    // `--bytes <BYTES>` names the flag `--bytes`; a positional `<HOST:PORT>` its value.
    let flag = match arg.split_whitespace().next() {
        Some(f) if f.starts_with('-') => f.to_string(),
        Some(f) => f
            .trim_matches(|c| matches!(c, '<' | '>' | '[' | ']' | '.'))
            .to_string(),
        None => "value".to_string(),
    };
    format!("bad {flag} {value:?}: {flat}")
}

/// clap's message without its `error: ` prefix, tips, usage and "For more information": the
/// lines of its first paragraph joined (a list after a colon with commas), and a similar
/// name clap suggests.
fn message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut paragraphs = text.split("\n\n");
    let first = paragraphs.next().unwrap_or_default();
    let mut lines = first.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut msg = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches("error:")
        .trim()
        .to_string();
    let rest: Vec<&str> = lines.collect();
    if !rest.is_empty() {
        if !msg.ends_with(':') {
            msg.push(':');
        }
        msg.push(' ');
        msg.push_str(&rest.join(", "));
    }
    // "tip: a similar argument exists: '--json'" is worth keeping; "to pass '--x' as a
    // value, use '-- --x'" is not (braid takes no free-form values after `--`).
    for p in paragraphs {
        for l in p.lines().map(str::trim) {
            if let Some(tip) = l.strip_prefix("tip: ") {
                if tip.contains("similar") {
                    msg.push_str("; ");
                    msg.push_str(tip);
                }
            }
        }
    }
    flatten(&msg)
}

/// One line: newlines and runs of spaces become single spaces.
fn flatten(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `braid sim`, `braid endpoint add`...: the subcommands named on the command line.
fn command_path(cmd: &clap::Command, args: &[String]) -> String {
    let mut path = vec![cmd.get_name().to_string()];
    let mut cur = cmd;
    for a in args.iter().skip(1) {
        if a == "--" {
            break;
        }
        if let Some(sub) = cur.find_subcommand(a) {
            path.push(sub.get_name().to_string());
            cur = sub;
        }
    }
    path.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    fn cli() -> Command {
        Command::new("braid").subcommand(
            Command::new("sim")
                .arg(Arg::new("json").long("json").num_args(0))
                .arg(Arg::new("bytes").long("bytes").value_parser(
                    |s: &str| -> Result<u64, String> {
                        s.parse().map_err(|_| "expected a byte count".to_string())
                    },
                ))
                .arg(
                    Arg::new("cc")
                        .long("cc")
                        .value_parser(|s: &str| -> Result<String, String> {
                            Err(format!("unknown congestion control '{s}'"))
                        }),
                )
                .arg(Arg::new("port").long("port").required(true))
                .arg(Arg::new("remote").value_name("HOST:PORT").required(true)),
        )
    }

    fn line(args: &[&str]) -> Option<String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let e = cli().try_get_matches_from(&args).unwrap_err();
        one_line(&e, &cli(), &args)
    }

    #[test]
    fn usage_errors_become_one_line_naming_the_help_to_read() {
        let l = line(&["braid", "sim", "--bogus"]).unwrap();
        assert_eq!(
            l,
            "unexpected argument '--bogus' found (see 'braid sim --help')"
        );
        let l = line(&["braid", "sim", "--jsn", "--port", "1", "h:1"]).unwrap();
        assert_eq!(
            l,
            "unexpected argument '--jsn' found; a similar argument exists: '--json' \
             (see 'braid sim --help')"
        );
        let l = line(&["braid", "sim"]).unwrap();
        assert_eq!(
            l,
            "the following required arguments were not provided: --port <port>, <HOST:PORT> \
             (see 'braid sim --help')"
        );
        let l = line(&["braid", "bogus"]).unwrap();
        assert!(
            l.starts_with("unrecognized subcommand 'bogus'") && l.ends_with("(see 'braid --help')"),
            "{l}"
        );
    }

    #[test]
    fn refused_values_name_the_flag_and_the_value_once() {
        let l = line(&["braid", "sim", "--bytes", "x"]).unwrap();
        assert_eq!(l, "bad --bytes \"x\": expected a byte count");
        let l = line(&["braid", "sim", "--cc", "vegas"]).unwrap();
        assert_eq!(l, "unknown congestion control 'vegas'");
    }

    #[test]
    fn help_and_version_are_no_errors() {
        for args in [&["braid", "--help"][..], &["braid", "sim", "-h"]] {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            let e = cli().try_get_matches_from(&args).unwrap_err();
            assert_eq!(one_line(&e, &cli(), &args), None);
        }
    }
}
