//! Which accounts `read_only` does not stop, pure: on MariaDB an account
//! with `READ_ONLY ADMIN` (and, before 10.11, one with `SUPER`) writes to a
//! read-only server. Fencing ends their sessions, but cannot stop them
//! reconnecting and writing, so they are named in the snapshot for `status`.

use super::status::Columns;

/// The accounts in the rows of [`super::Flavor::bypass_query`], as
/// `'user'@'host' (PRIVILEGE, …)`, sorted, leaving out `own_user` (the
/// adapter's own login, which must be able to set `read_only`).
pub fn bypass_accounts(rows: &[Columns], own_user: &str) -> Vec<String> {
    let get = |r: &Columns, k: &str| r.get(k).cloned().flatten().unwrap_or_default();
    let super_bypasses = rows
        .first()
        .map(|r| super_bypasses_read_only(&get(r, "version")))
        .unwrap_or(false);
    let mut by: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for r in rows {
        let grantee = get(r, "grantee");
        let privilege = get(r, "privilege");
        if grantee.is_empty() || user_of(&grantee) == own_user {
            continue;
        }
        if privilege == "SUPER" && !super_bypasses {
            continue;
        }
        let p = by.entry(grantee).or_default();
        if !p.contains(&privilege) {
            p.push(privilege);
        }
    }
    by.into_iter()
        .map(|(g, mut p)| {
            p.sort();
            format!("{g} ({})", p.join(", "))
        })
        .collect()
}

/// The user part of `'user'@'host'`.
fn user_of(grantee: &str) -> &str {
    let u = grantee.rsplit_once('@').map_or(grantee, |(u, _)| u);
    u.trim_matches('\'')
}

/// MariaDB before 10.11 let `SUPER` write to a read-only server
/// (MDEV-29596 separated the two privileges).
fn super_bypasses_read_only(version: &str) -> bool {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => (major, minor) < (10, 11),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(grantee: &str, privilege: &str, version: &str) -> Columns {
        [
            ("grantee", grantee),
            ("privilege", privilege),
            ("version", version),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Some(v.to_string())))
        .collect()
    }

    #[test]
    fn read_only_admin_bypasses_and_own_login_is_left_out() {
        let v = "10.11.6-MariaDB-0+deb12u1-log";
        let rows = vec![
            row("'switchyard'@'%'", "READ_ONLY ADMIN", v),
            row("'switchyard'@'%'", "SUPER", v),
            row("'root'@'localhost'", "READ_ONLY ADMIN", v),
            row("'root'@'localhost'", "SUPER", v),
            row("'ops'@'%'", "READ_ONLY ADMIN", v),
            row("'legacy'@'%'", "SUPER", v),
        ];
        assert_eq!(
            bypass_accounts(&rows, "switchyard"),
            [
                "'ops'@'%' (READ_ONLY ADMIN)",
                "'root'@'localhost' (READ_ONLY ADMIN)"
            ]
        );
    }

    #[test]
    fn before_10_11_super_bypasses_too() {
        let v = "10.6.16-MariaDB";
        let rows = vec![
            row("'legacy'@'%'", "SUPER", v),
            row("'ops'@'10.%'", "READ_ONLY ADMIN", v),
            row("'ops'@'10.%'", "SUPER", v),
        ];
        assert_eq!(
            bypass_accounts(&rows, "switchyard"),
            [
                "'legacy'@'%' (SUPER)",
                "'ops'@'10.%' (READ_ONLY ADMIN, SUPER)"
            ]
        );
        assert!(bypass_accounts(&[], "x").is_empty());
        assert!(super_bypasses_read_only("10.5.23-MariaDB"));
        assert!(!super_bypasses_read_only("11.4.2-MariaDB"));
    }
}
