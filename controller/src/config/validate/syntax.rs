//! The shapes of strings in the config: names, DNS names, `host:port`, URLs.
//! Each returns a message that says what would be valid.

use std::net::{Ipv6Addr, SocketAddr};

/// Names become etcd key segments and metric labels, so they are kept to a
/// small, safe alphabet.
pub fn name(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if first_ok && rest_ok && s.len() <= 63 {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid name: use up to 63 letters, digits, '-', '_' or '.', starting with a letter or digit"
        ))
    }
}

/// A DNS label: 1–63 letters, digits, '-' or '_', not starting or ending with '-'.
fn label_ok(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A host name, with or without the trailing dot.
pub fn hostname(s: &str) -> Result<(), String> {
    let bare = s.strip_suffix('.').unwrap_or(s);
    if !bare.is_empty() && bare.len() <= 253 && bare.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid host name: dot-separated labels of letters, digits and '-', e.g. \"db1.example.com\""
        ))
    }
}

/// A fully qualified domain name: a host name ending with '.'.
pub fn fqdn(s: &str) -> Result<(), String> {
    if !s.ends_with('.') {
        return Err(format!(
            "{s:?} must be fully qualified and end with '.': write \"{s}.\""
        ));
    }
    hostname(s).map_err(|_| {
        format!("{s:?} is not a valid DNS name: dot-separated labels of letters, digits and '-', ending with '.', e.g. \"api.example.com.\"")
    })
}

/// True when `name` is `zone` or below it (both FQDNs, compared without case).
pub fn in_zone(name: &str, zone: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let zone = zone.to_ascii_lowercase();
    name == zone || name.ends_with(&format!(".{zone}"))
}

/// `host:port` with a host name, an IPv4 address or a bracketed IPv6 address.
pub fn host_port(s: &str) -> Result<(), String> {
    let fail = || {
        Err(format!(
            "{s:?} is not host:port, e.g. \"10.0.1.5:3306\", \"db1.internal:3306\" or \"[2001:db8::5]:3306\""
        ))
    };
    if s.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return fail();
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().is_ok(),
        None => hostname(host).is_ok() && !host.ends_with('.'),
    };
    if port_ok && host_ok { Ok(()) } else { fail() }
}

/// An `http://` or `https://` URL with a host, an optional port (required
/// when `port_required`), and an optional path.
pub fn url(s: &str, port_required: bool) -> Result<(), String> {
    let example = if port_required {
        "e.g. \"https://etcd-1.internal:2379\""
    } else {
        "e.g. \"http://127.0.0.1:5000\" or \"https://route53.amazonaws.com\""
    };
    let fail = || Err(format!("{s:?} is not a valid URL: {example}"));
    let Some(rest) = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
    else {
        return Err(format!(
            "{s:?} is not a valid URL: it must start with http:// or https://, {example}"
        ));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!(
            "{s:?}: credentials do not belong in a URL; use TLS client certificates"
        ));
    }
    if host_port(authority).is_ok() {
        return Ok(());
    }
    if port_required {
        if hostname(authority).is_ok() {
            return Err(format!("{s:?} has no port: {example}"));
        }
        return fail();
    }
    let bracketed = authority
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .is_some_and(|h| h.parse::<Ipv6Addr>().is_ok());
    if bracketed || hostname(authority).is_ok() {
        Ok(())
    } else {
        fail()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name("us-east").is_ok());
        assert!(name("db_1.a").is_ok());
        assert!(name("").is_err());
        assert!(name("-x").is_err());
        assert!(name("us east").is_err());
        assert!(name("a/b").is_err());
    }

    #[test]
    fn fqdns_need_the_trailing_dot() {
        assert!(fqdn("api.example.com.").is_ok());
        let err = fqdn("api.example.com").unwrap_err();
        assert!(err.contains("write \"api.example.com.\""), "{err}");
        assert!(fqdn("bad..name.").is_err());
        assert!(fqdn("-x.example.com.").is_err());
    }

    #[test]
    fn zone_membership_is_by_whole_labels() {
        assert!(in_zone("api.example.com.", "example.com."));
        assert!(in_zone("example.com.", "example.com."));
        assert!(in_zone("API.Example.COM.", "example.com."));
        assert!(!in_zone("api.badexample.com.", "example.com."));
        assert!(!in_zone("api.example.org.", "example.com."));
    }

    #[test]
    fn host_ports() {
        assert!(host_port("10.0.1.5:3306").is_ok());
        assert!(host_port("db1.internal:3306").is_ok());
        assert!(host_port("[2001:db8::5]:3306").is_ok());
        assert!(host_port("db1.internal").is_err());
        assert!(host_port("db1:0").is_err());
        assert!(host_port("db1:99999").is_err());
        assert!(host_port(":3306").is_err());
    }

    #[test]
    fn urls() {
        assert!(url("https://etcd-1.internal:2379", true).is_ok());
        assert!(url("http://127.0.0.1:2379/", true).is_ok());
        assert!(url("http://[::1]:2379", true).is_ok());
        assert!(
            url("https://etcd-1.internal", true)
                .unwrap_err()
                .contains("has no port")
        );
        assert!(url("etcd-1:2379", true).unwrap_err().contains("http://"));
        assert!(url("https://route53.amazonaws.com", false).is_ok());
        assert!(url("http://127.0.0.1:5000/", false).is_ok());
        assert!(url("http://u:p@h:1", false).is_err());
    }
}
