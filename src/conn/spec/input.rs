//! Parsing what a DBA types: a libpq URI (percent-escapes, IPv6 and socket hosts, query
//! parameters) or a key=value string (quoting and backslash escapes). The password is split off.

use super::{bad, ConnSpec};
use crate::error::Result;

pub(super) fn parse_uri(uri: &str) -> Result<(ConnSpec, Option<String>)> {
    let rest = uri
        .strip_prefix("postgresql://")
        .or_else(|| uri.strip_prefix("postgres://"))
        .ok_or_else(|| bad("a connection URI starts with postgresql:// or postgres://"))?;
    let decode = |s: &str| -> Result<String> {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| bad("the URI contains percent-escapes that are not valid UTF-8"))
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (before_query, None),
    };
    let mut spec = ConnSpec::default();
    let mut password = None;
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hp)) => {
            match userinfo.split_once(':') {
                Some((u, p)) => {
                    if !u.is_empty() {
                        spec.user = Some(decode(u)?);
                    }
                    password = Some(decode(p)?);
                }
                None if !userinfo.is_empty() => spec.user = Some(decode(userinfo)?),
                None => {}
            }
            hp
        }
        None => authority,
    };
    if hostport.contains(',') {
        return Err(bad(
            "several hosts in one URI are not supported yet; give one host",
        ));
    }
    if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("an IPv6 host in brackets is missing its closing ]"))?;
        spec.host = Some(h.to_string());
        if let Some(p) = after.strip_prefix(':') {
            spec.set("port", p.to_string(), &mut password)?;
        } else if !after.is_empty() {
            return Err(bad(format!("unexpected \"{after}\" after the host")));
        }
    } else if let Some((h, p)) = hostport.rsplit_once(':') {
        if !h.is_empty() {
            spec.host = Some(decode(h)?);
        }
        if !p.is_empty() {
            spec.set("port", p.to_string(), &mut password)?;
        }
    } else if !hostport.is_empty() {
        spec.host = Some(decode(hostport)?);
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        spec.dbname = Some(decode(db)?);
    }
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad(format!("URI parameter \"{pair}\" has no value")))?;
            spec.set(&decode(k)?, decode(v)?, &mut password)?;
        }
    }
    Ok((spec, password))
}

/// Parse libpq's key=value syntax: values may be single-quoted, with `\'` and `\\` escapes.
pub(super) fn parse_keyvalue(text: &str) -> Result<(ConnSpec, Option<String>)> {
    let mut spec = ConnSpec::default();
    let mut password = None;
    let mut chars = text.chars().peekable();
    let mut seen_any = false;
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(bad(format!(
                "expected key=value, found \"{key}\" without =; write e.g. host=localhost port=5432"
            )));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(e) => value.push(e),
                        None => break,
                    },
                    '\'' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(bad(format!(
                    "the quoted value of {key} has no closing quote"
                )));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(e) = chars.next() {
                        value.push(e);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        if key.is_empty() {
            return Err(bad("a parameter name is missing before ="));
        }
        spec.set(&key, value, &mut password)?;
        seen_any = true;
    }
    if !seen_any {
        return Err(bad("the connection string is empty"));
    }
    Ok((spec, password))
}
