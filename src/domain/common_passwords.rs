//! The common-password list: the 20,000 most used passwords (lowercased, deduplicated) as
//! shipped by Django, compiled into the binary. Source and licence: `data/README.md`.

use std::collections::HashSet;
use std::io::Read as _;
use std::sync::LazyLock;

static COMPRESSED: &[u8] = include_bytes!("../../data/common-passwords.txt.gz");

static LIST: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let mut text = String::new();
    flate2::read::GzDecoder::new(COMPRESSED)
        .read_to_string(&mut text)
        .expect("the embedded common-password list is valid gzip-compressed UTF-8");
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
});

/// `lowered` must already be lowercased, as the list is.
pub(super) fn contains(lowered: &str) -> bool {
    LIST.contains(lowered)
}

/// Decompresses the list now, at start-up, rather than in the first signup.
pub fn warm_up() -> usize {
    LIST.len()
}

#[cfg(test)]
mod tests {
    #[test]
    fn holds_more_than_ten_thousand_passwords() {
        assert!(super::warm_up() > 10_000);
    }
}
