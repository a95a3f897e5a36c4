//! PEM: a base64 body between `-----BEGIN <label>-----` and `-----END <label>-----`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Every PEM block of `text` (e.g. a CA bundle), in order.
pub fn decode_all(mut text: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut blocks = Vec::new();
    while text.contains("-----BEGIN ") {
        let (label, der) = decode(text)?;
        let end_marker = format!("-----END {label}-----");
        let end = text
            .find(&end_marker)
            .map_or(text.len(), |i| i + end_marker.len());
        text = &text[end..];
        blocks.push((label, der));
    }
    Ok(blocks)
}

/// The first PEM block of `text`: its label and the DER bytes it carries.
pub fn decode(text: &str) -> Result<(String, Vec<u8>), String> {
    let start = text
        .find("-----BEGIN ")
        .ok_or("no PEM block (-----BEGIN …-----) found")?;
    let after = &text[start + "-----BEGIN ".len()..];
    let label_end = after.find("-----").ok_or("unterminated PEM header")?;
    let label = after[..label_end].to_string();
    let body_and_rest = &after[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let body_end = body_and_rest
        .find(&end_marker)
        .ok_or_else(|| format!("missing {end_marker}"))?;
    let body: String = body_and_rest[..body_end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = STANDARD
        .decode(body)
        .map_err(|_| "PEM body is not valid base64".to_string())?;
    Ok((label, der))
}

/// `der` as a PEM block labelled `label`, with 64-character lines (RFC 7468).
pub fn encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_blocks_decode_to_what_went_in() {
        let der: Vec<u8> = (0..=255).collect();
        let text = encode("PRIVATE KEY", &der);
        assert!(text.lines().all(|line| line.len() <= 64));
        assert_eq!(decode(&text).unwrap(), ("PRIVATE KEY".to_string(), der));
    }

    #[test]
    fn reads_label_and_body() {
        let (label, der) =
            decode("junk\n-----BEGIN THING-----\nAQID\nBA==\n-----END THING-----\n").unwrap();
        assert_eq!(label, "THING");
        assert_eq!(der, [1, 2, 3, 4]);
    }

    #[test]
    fn reads_every_block_of_a_bundle() {
        let text =
            "-----BEGIN A-----\nAQ==\n-----END A-----\n-----BEGIN B-----\nAg==\n-----END B-----\n";
        let blocks = decode_all(text).unwrap();
        assert_eq!(
            blocks,
            vec![("A".to_string(), vec![1]), ("B".to_string(), vec![2])]
        );
        assert!(decode_all("").unwrap().is_empty());
    }

    #[test]
    fn rejects_broken_blocks() {
        assert!(decode("no pem here").is_err());
        assert!(decode("-----BEGIN A-----\nAQID\n-----END B-----").is_err());
        assert!(decode("-----BEGIN A-----\n!!!!\n-----END A-----").is_err());
    }
}
