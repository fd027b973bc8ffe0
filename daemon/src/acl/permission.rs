//! Permissions of an account on a topic or a group, as 4.9.7's
//! `Permission` parses and compares them.

/// A permission bit set: `DENY`, `ANY`, `PUB`, `SUB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Perm(u8);

impl Perm {
    /// Nothing is allowed (also what a missing or unknown text means).
    pub(crate) const DENY: Perm = Perm(1);
    /// Either PUB or SUB is enough (4.9.7 defines it; no request needs it).
    #[allow(dead_code)]
    pub(crate) const ANY: Perm = Perm(1 << 1);
    /// Send to a topic.
    pub(crate) const PUB: Perm = Perm(1 << 2);
    /// Consume from a topic, or as a group.
    pub(crate) const SUB: Perm = Perm(1 << 3);

    /// The permission a text names: `PUB`, `SUB`, `PUB|SUB`, `SUB|PUB` or
    /// `DENY`; anything else (or nothing) denies, as in 4.9.7.
    pub(crate) fn parse(text: Option<&str>) -> Perm {
        match text.map(str::trim) {
            Some("PUB") => Perm::PUB,
            Some("SUB") => Perm::SUB,
            Some("PUB|SUB") | Some("SUB|PUB") => Perm(Perm::PUB.0 | Perm::SUB.0),
            _ => Perm::DENY,
        }
    }

    /// Whether a text is one of the permissions [`Perm::parse`] knows.
    pub(crate) fn is_valid_text(text: &str) -> bool {
        matches!(text.trim(), "PUB" | "SUB" | "PUB|SUB" | "SUB|PUB" | "DENY")
    }

    /// Whether owning `self` grants `needed`.
    pub(crate) fn grants(self, needed: Perm) -> bool {
        if self.0 & Perm::DENY.0 != 0 {
            return false;
        }
        if needed.0 & Perm::ANY.0 != 0 {
            return self.0 & (Perm::PUB.0 | Perm::SUB.0) != 0;
        }
        needed.0 & self.0 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_4_9_7() {
        assert_eq!(Perm::parse(Some(" PUB ")), Perm::PUB);
        assert_eq!(Perm::parse(Some("SUB|PUB")), Perm::parse(Some("PUB|SUB")));
        assert_eq!(Perm::parse(Some("pub")), Perm::DENY);
        assert_eq!(Perm::parse(None), Perm::DENY);
    }

    #[test]
    fn deny_wins_and_any_needs_one_of_pub_sub() {
        let both = Perm::parse(Some("PUB|SUB"));
        assert!(both.grants(Perm::PUB) && both.grants(Perm::SUB) && both.grants(Perm::ANY));
        assert!(!Perm::PUB.grants(Perm::SUB));
        assert!(!Perm::DENY.grants(Perm::PUB));
        assert!(!Perm::DENY.grants(Perm::ANY));
    }
}
