//! Safety codes (PROTOCOL.md section 4): what two users compare to know nobody sits in
//! the middle of their connection.

use sha2::{Digest, Sha256};

/// The code for a connection between the two DTLS fingerprints (`sha-256` hex with
/// colons, as in the SDP): nine digits in groups of three.
pub fn safety_code(ours: &str, theirs: &str) -> String {
    let mut fingerprints = [ours.to_uppercase(), theirs.to_uppercase()];
    fingerprints.sort();
    let digest = Sha256::digest(fingerprints.join("\n").as_bytes());
    let number = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000_000;
    let digits = format!("{number:09}");
    format!("{} {} {}", &digits[0..3], &digits[3..6], &digits[6..9])
}

/// The `sha-256` fingerprint an SDP announces (session or media level).
pub(crate) fn sdp_fingerprint(sdp: &str) -> Option<String> {
    sdp.lines().find_map(|line| {
        let value = line.trim().strip_prefix("a=fingerprint:")?;
        let (algorithm, hex) = value.split_once(' ')?;
        algorithm
            .eq_ignore_ascii_case("sha-256")
            .then(|| hex.trim().to_uppercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";
    const B: &str = "01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF";

    #[test]
    fn both_ends_get_the_same_code_and_it_matches_the_recipe() {
        assert_eq!(safety_code(A, B), safety_code(B, A));
        assert_eq!(safety_code(A, B), safety_code(&A.to_lowercase(), B));
        // The recipe by hand: sorted, newline-joined, SHA-256, first 4 bytes big-endian.
        let digest = Sha256::digest(format!("{B}\n{A}").as_bytes());
        let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000_000;
        assert_eq!(safety_code(A, B).replace(' ', ""), format!("{n:09}"));
        let code = safety_code(A, B);
        assert_eq!(code.len(), 11);
        assert_eq!(code.as_bytes()[3], b' ');
        assert_ne!(
            safety_code(A, B),
            safety_code(A, A),
            "another certificate, another code"
        );
    }

    #[test]
    fn finds_the_sha256_fingerprint_in_sdp() {
        let sdp = format!(
            "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\na=fingerprint:sha-256 {}\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
            A.to_lowercase()
        );
        assert_eq!(sdp_fingerprint(&sdp).as_deref(), Some(A));
        assert_eq!(
            sdp_fingerprint("v=0\r\na=fingerprint:sha-1 AA:BB\r\n"),
            None
        );
        assert_eq!(sdp_fingerprint("garbage"), None);
    }
}
