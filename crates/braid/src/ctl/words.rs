//! The `ip mptcp` words of `braid endpoint` and `braid limits`, parsed into [`Request`]s.

use super::*;

pub(super) fn parse_flag(name: &str) -> Result<EndpointFlags, String> {
    Ok(match name {
        "signal" => EndpointFlags::SIGNAL,
        "subflow" => EndpointFlags::SUBFLOW,
        "backup" => EndpointFlags::BACKUP,
        "fullmesh" => EndpointFlags::FULLMESH,
        _ => return Err(format!("unknown endpoint flag \"{name}\"")),
    })
}

/// The names of the flags set in `f`, in the kernel's order.
pub fn flag_names(f: EndpointFlags) -> Vec<String> {
    [
        (EndpointFlags::SIGNAL, "signal"),
        (EndpointFlags::SUBFLOW, "subflow"),
        (EndpointFlags::BACKUP, "backup"),
        (EndpointFlags::FULLMESH, "fullmesh"),
    ]
    .into_iter()
    .filter(|(flag, _)| f.contains(*flag))
    .map(|(_, n)| n.to_string())
    .collect()
}

/// The change named in an `endpoint change` request.
pub fn parse_change(s: &str) -> Result<FlagChange, String> {
    Ok(match s {
        "backup" => FlagChange::Backup,
        "nobackup" => FlagChange::NoBackup,
        "fullmesh" => FlagChange::Fullmesh,
        "nofullmesh" => FlagChange::NoFullmesh,
        _ => {
            return Err(format!(
                "unknown change \"{s}\": expected backup, nobackup, fullmesh or nofullmesh"
            ))
        }
    })
}

fn next_value<'a>(it: &mut impl Iterator<Item = &'a str>, key: &str) -> Result<&'a str, String> {
    it.next().ok_or_else(|| format!("\"{key}\" needs a value"))
}

fn parse_num<T: std::str::FromStr>(key: &str, v: &str, max: u64) -> Result<T, String> {
    let bad = || format!("invalid {key} \"{v}\"");
    let n: u64 = v.parse().map_err(|_| bad())?;
    if n > max {
        return Err(bad());
    }
    v.parse().map_err(|_| bad())
}

/// `endpoint add ADDR [dev DEV] [id N] [port P] [signal] [subflow] [backup] [fullmesh]`,
/// `endpoint delete id N`, `endpoint show`, `endpoint flush`,
/// `endpoint change id N backup|nobackup|fullmesh|nofullmesh`: the words after `endpoint`.
pub fn parse_endpoint_args(words: &[String]) -> Result<Request, String> {
    let mut it = words.iter().map(String::as_str);
    let verb = it
        .next()
        .ok_or("endpoint: expected add, delete, show, flush or change")?;
    match verb {
        "add" => {
            let addr_s = next_value(&mut it, "add")?;
            let addr: IpAddr = addr_s.parse().map_err(|_| {
                // Only digits and dots: an IPv4 address, mistyped (no name is looked up).
                if addr_s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                    format!("invalid address \"{addr_s}\": not a valid IPv4 address")
                } else if addr_s.contains(':') {
                    format!("invalid address \"{addr_s}\": not a valid IPv6 address")
                } else {
                    format!("invalid address \"{addr_s}\"")
                }
            })?;
            if addr.is_unspecified() || addr.is_multicast() {
                return Err(PmError::InvalidAddress(addr).to_string());
            }
            let mut spec = EndpointSpec {
                id: None,
                addr,
                port: None,
                dev: None,
                flags: Vec::new(),
            };
            while let Some(w) = it.next() {
                match w {
                    "dev" => spec.dev = Some(next_value(&mut it, w)?.to_string()),
                    "id" => {
                        let id: u8 = parse_num(w, next_value(&mut it, w)?, 255)?;
                        if id == 0 {
                            return Err(PmError::InvalidId(0).to_string());
                        }
                        spec.id = Some(id);
                    }
                    "port" => spec.port = Some(parse_num(w, next_value(&mut it, w)?, 65535)?),
                    "signal" | "subflow" | "backup" | "fullmesh" => {
                        if !spec.flags.iter().any(|f| f == w) {
                            spec.flags.push(w.to_string());
                        }
                    }
                    _ => return Err(format!("unknown argument \"{w}\"")),
                }
            }
            spec.endpoint_flags()?;
            Ok(Request::EndpointAdd { endpoint: spec })
        }
        "delete" | "del" => {
            let id = match (it.next(), it.next()) {
                (Some("id"), Some(v)) => parse_num("id", v, 255)?,
                _ => return Err("endpoint delete: expected \"id N\"".into()),
            };
            no_more(it)?;
            Ok(Request::EndpointDelete { id })
        }
        "show" => {
            no_more(it)?;
            Ok(Request::EndpointShow)
        }
        "flush" => {
            no_more(it)?;
            Ok(Request::EndpointFlush)
        }
        "change" => {
            let id = match (it.next(), it.next()) {
                (Some("id"), Some(v)) => parse_num("id", v, 255)?,
                _ => return Err("endpoint change: expected \"id N\"".into()),
            };
            let change = it
                .next()
                .ok_or("endpoint change: expected backup, nobackup, fullmesh or nofullmesh")?;
            parse_change(change)?;
            no_more(it)?;
            Ok(Request::EndpointChange {
                id,
                change: change.to_string(),
            })
        }
        _ => Err(format!(
            "endpoint: unknown command \"{verb}\" (add, delete, show, flush, change)"
        )),
    }
}

/// `limits set [subflows N] [add_addr_accepted N]` and `limits show`: the words after
/// `limits`. Values above 8 are refused as the kernel does.
pub fn parse_limits_args(words: &[String]) -> Result<Request, String> {
    let mut it = words.iter().map(String::as_str);
    match it.next() {
        Some("set") => {
            let (mut subflows, mut accepted) = (None, None);
            while let Some(w) = it.next() {
                let v = next_value(&mut it, w)?;
                let n: u32 = v.parse().map_err(|_| format!("invalid {w} \"{v}\""))?;
                match w {
                    "subflows" => subflows = Some(n),
                    "add_addr_accepted" => accepted = Some(n),
                    _ => return Err(format!("unknown argument \"{w}\"")),
                }
            }
            // Validated with the kernel's rule (at most 8 each).
            let l = Limits::new(subflows.unwrap_or(0), accepted.unwrap_or(0))
                .map_err(|e| e.to_string())?;
            Ok(Request::LimitsSet {
                subflows: subflows.map(|_| l.subflows),
                add_addr_accepted: accepted.map(|_| l.add_addr_accepted),
            })
        }
        Some("show") | None => {
            no_more(it)?;
            Ok(Request::LimitsShow)
        }
        Some(w) => Err(format!("limits: unknown command \"{w}\" (set, show)")),
    }
}

fn no_more<'a>(mut it: impl Iterator<Item = &'a str>) -> Result<(), String> {
    match it.next() {
        Some(w) => Err(format!("unexpected argument \"{w}\"")),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------- server
