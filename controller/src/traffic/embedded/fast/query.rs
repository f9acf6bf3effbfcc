//! Which queries the fast path may answer, read straight from the packet
//! without allocating: a plain `QUERY` with one class-IN question, its name
//! made of ordinary labels (no compression pointer), and at most an EDNS(0)
//! OPT record after it (version 0, no extended RCODE, options well formed
//! and none that hickory acts on) — what resolvers send. Anything else
//! (TSIG, answer/authority records, trailing bytes, other EDNS versions…)
//! returns `None` and goes to hickory, which parses it fully.

/// Longest name on the wire (RFC 1035 §2.3.4).
pub const MAX_NAME: usize = 255;

/// Length of the DNS header.
pub const HEADER: usize = 12;

/// Class IN.
const CLASS_IN: u16 = 1;

/// RR type OPT.
const TYPE_OPT: u16 = 41;

/// EDNS options hickory parses and acts on (NSID, client subnet): such
/// queries are hickory's.
const HICKORY_OPTIONS: [u16; 2] = [3, 8];

/// A question the fast path may answer.
#[derive(Debug, Clone)]
pub struct Question {
    lower: [u8; MAX_NAME],
    len: usize,
    /// The query type.
    pub qtype: u16,
    /// Where the question ends in the packet.
    pub end: usize,
    /// With EDNS: the UDP payload size the client advertised.
    pub edns: Option<u16>,
    /// The RD flag, echoed in the response.
    pub rd: bool,
    /// The CD flag, echoed in the response.
    pub cd: bool,
}

impl Question {
    /// The name in wire form, ASCII-lowercased (the lookup key).
    pub fn lower(&self) -> &[u8] {
        &self.lower[..self.len]
    }

    /// Where, within the name, the suffix `origin` (wire form, lowercase)
    /// starts at a label boundary: `Some(0)` for the apex itself, `None`
    /// when the name is outside that zone.
    pub fn zone_offset(&self, origin: &[u8]) -> Option<usize> {
        let name = self.lower();
        let mut at = 0;
        loop {
            if name.len() - at == origin.len() {
                return (&name[at..] == origin).then_some(at);
            }
            let label = usize::from(*name.get(at)?);
            if label == 0 {
                return None;
            }
            at += 1 + label;
            if at > name.len() {
                return None;
            }
        }
    }
}

/// Reads `packet` as a fast-path query, or `None` when hickory must.
pub fn parse(packet: &[u8]) -> Option<Question> {
    let header = packet.get(..HEADER)?;
    let (flags_hi, flags_lo) = (header[2], header[3]);
    // QR=0 (a query), OPCODE=0 (QUERY), AA=0, TC=0.
    if flags_hi & 0b1111_1110 != 0 {
        return None;
    }
    // Z=0 and RCODE=0; RA and AD in a query are ignored, as hickory does.
    if flags_lo & 0b0100_1111 != 0 {
        return None;
    }
    // One question, no answer or authority records, at most an OPT.
    if header[4..10] != [0, 1, 0, 0, 0, 0] || header[10] != 0 || header[11] > 1 {
        return None;
    }
    let mut lower = [0u8; MAX_NAME];
    let mut at = HEADER;
    let mut len = 0;
    loop {
        let label = usize::from(*packet.get(at)?);
        if label > 63 {
            // A compression pointer or an extended label type.
            return None;
        }
        if len + 1 + label > MAX_NAME {
            return None;
        }
        let bytes = packet.get(at..at + 1 + label)?;
        for (dst, src) in lower[len..len + 1 + label].iter_mut().zip(bytes) {
            *dst = src.to_ascii_lowercase();
        }
        // The length byte is not a letter: to_ascii_lowercase kept it.
        len += 1 + label;
        at += 1 + label;
        if label == 0 {
            break;
        }
    }
    let tail = packet.get(at..at + 4)?;
    let qtype = u16::from_be_bytes([tail[0], tail[1]]);
    let qclass = u16::from_be_bytes([tail[2], tail[3]]);
    let end = at + 4;
    if qclass != CLASS_IN {
        return None;
    }
    let edns = match header[11] {
        0 if end == packet.len() => None,
        1 => Some(opt(packet.get(end..)?)?),
        _ => return None,
    };
    Some(Question {
        lower,
        len,
        qtype,
        end,
        edns,
        rd: flags_hi & 0x01 != 0,
        cd: flags_lo & 0x10 != 0,
    })
}

/// The advertised payload size of `rest` if it is exactly one plain
/// EDNS(0) OPT record: root owner, version 0, no extended RCODE, options
/// that exactly fill its data, none of [`HICKORY_OPTIONS`].
fn opt(rest: &[u8]) -> Option<u16> {
    let fixed = rest.get(..11)?;
    let rtype = u16::from_be_bytes([fixed[1], fixed[2]]);
    let payload = u16::from_be_bytes([fixed[3], fixed[4]]);
    let (ext_rcode, version) = (fixed[5], fixed[6]);
    let rdlen = usize::from(u16::from_be_bytes([fixed[9], fixed[10]]));
    if fixed[0] != 0 || rtype != TYPE_OPT || ext_rcode != 0 || version != 0 {
        return None;
    }
    let mut options = rest.get(11..)?;
    if options.len() != rdlen {
        return None;
    }
    while !options.is_empty() {
        let head = options.get(..4)?;
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        if HICKORY_OPTIONS.contains(&code) {
            return None;
        }
        options = options.get(4 + len..)?;
    }
    Some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[u8], qtype: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(name);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&[0, 1]);
        p
    }

    const API: &[u8] = b"\x03API\x05bench\x07example\x00";
    const ORIGIN: &[u8] = b"\x05bench\x07example\x00";

    #[test]
    fn a_plain_query_is_read_and_lowercased() {
        let q = parse(&query(API, 1)).expect("fast");
        assert_eq!(q.lower(), b"\x03api\x05bench\x07example\x00");
        assert_eq!((q.qtype, q.rd, q.cd), (1, true, false));
        assert_eq!(q.end, 12 + API.len() + 4);
        assert_eq!(q.zone_offset(ORIGIN), Some(4));
        assert_eq!(q.zone_offset(b"\x07example\x00"), Some(10));
        assert_eq!(q.zone_offset(b"\x03org\x00"), None);
        let apex = parse(&query(ORIGIN, 6)).expect("fast");
        assert_eq!(apex.zone_offset(ORIGIN), Some(0));
    }

    #[test]
    fn a_suffix_that_is_not_at_a_label_boundary_is_outside() {
        // "xbench.example." ends with the bytes of "bench.example." only
        // if label boundaries are ignored.
        let q = parse(&query(b"\x06xbench\x07example\x00", 1)).expect("fast");
        assert_eq!(q.zone_offset(ORIGIN), None);
    }

    #[test]
    fn anything_unusual_goes_to_hickory() {
        let good = query(API, 1);
        let mut edns = good.clone();
        edns[11] = 1; // ARCOUNT 1, but no OPT record follows
        let mut response = good.clone();
        response[2] |= 0x80;
        let mut notify = good.clone();
        notify[2] = 4 << 3;
        let mut tc = good.clone();
        tc[2] |= 0x02;
        let mut z = good.clone();
        z[3] |= 0x40;
        let mut chaos = good.clone();
        let n = chaos.len();
        chaos[n - 1] = 3;
        let mut trailing = good.clone();
        trailing.push(0);
        let pointer = query(b"\x03api\xc0\x0c", 1);
        for (what, p) in [
            ("edns", edns),
            ("response", response),
            ("notify", notify),
            ("tc", tc),
            ("z", z),
            ("chaos", chaos),
            ("trailing", trailing),
            ("pointer", pointer),
            ("short", good[..good.len() - 1].to_vec()),
            ("header only", good[..12].to_vec()),
        ] {
            assert!(parse(&p).is_none(), "{what}");
        }
    }

    fn with_opt(rest: &[u8]) -> Vec<u8> {
        let mut p = query(API, 1);
        p[11] = 1;
        p.extend_from_slice(rest);
        p
    }

    #[test]
    fn plain_edns_is_fast_and_anything_more_is_hickory() {
        // payload 1232, DO set, a COOKIE option (8 bytes).
        let cookie = [
            0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 12, 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        assert_eq!(parse(&with_opt(&cookie)).and_then(|q| q.edns), Some(1232));
        let bare = [0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(parse(&with_opt(&bare)).and_then(|q| q.edns), Some(4096));
        let mut version1 = bare;
        version1[6] = 1;
        let mut ext_rcode = bare;
        ext_rcode[5] = 1;
        let mut not_root = bare;
        not_root[0] = 1;
        let nsid = [0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 4, 0, 3, 0, 0];
        let short_option = [0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 4, 0, 10, 0, 8];
        let long_rdlen = [0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 9];
        let mut trailing = bare.to_vec();
        trailing.push(0);
        for (what, rest) in [
            ("version 1", &version1[..]),
            ("extended rcode", &ext_rcode[..]),
            ("owner not root", &not_root[..]),
            ("NSID", &nsid[..]),
            ("option longer than the data", &short_option[..]),
            ("data longer than the packet", &long_rdlen[..]),
            ("trailing byte", &trailing[..]),
        ] {
            assert!(parse(&with_opt(rest)).is_none(), "{what}");
        }
    }

    #[test]
    fn an_overlong_name_goes_to_hickory() {
        let mut name = Vec::new();
        for _ in 0..5 {
            name.push(63);
            name.extend_from_slice(&[b'a'; 63]);
        }
        name.push(0);
        assert!(parse(&query(&name, 1)).is_none());
    }
}
