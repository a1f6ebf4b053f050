//! The keys of the index's term maps.
//!
//! Most terms are short (a user id, an email, an IPv4 address, an event type): a [`Term`] holds
//! up to [`INLINE`] bytes in the map's own slot, so that finding a term compares bytes already
//! in cache instead of following a pointer to a heap string first (the index build's
//! comparisons were a sixth of the writer worker's time). Longer terms live on the heap.
//!
//! Maps are looked up by `&str` through [`Text`], which hashes and compares as the `Term` of the
//! same text would, without building one.

use std::hash::{Hash, Hasher};

/// Bytes a term can hold in place.
pub const INLINE: usize = 30;

/// One term's text.
#[derive(Clone)]
pub enum Term {
    /// At most [`INLINE`] bytes: the length, then the text, zero-padded.
    Inline(u8, [u8; INLINE]),
    /// Longer text.
    Heap(Box<str>),
}

impl Term {
    pub fn new(text: &str) -> Term {
        let b = text.as_bytes();
        if b.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..b.len()].copy_from_slice(b);
            Term::Inline(b.len() as u8, buf)
        } else {
            Term::Heap(text.into())
        }
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Term::Inline(n, buf) => &buf[..*n as usize],
            Term::Heap(s) => s.as_bytes(),
        }
    }

    /// Bytes held outside the map's slot.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Term::Inline(..) => 0,
            Term::Heap(s) => s.len(),
        }
    }

    /// The text (checked as UTF-8 again where it is held in place: for the cold paths that
    /// need a `&str`; lookups and the index file use the bytes).
    pub fn as_str(&self) -> &str {
        match self {
            // Copied from a `&str` whole, so always UTF-8.
            Term::Inline(n, buf) => std::str::from_utf8(&buf[..*n as usize]).unwrap_or_default(),
            Term::Heap(s) => s,
        }
    }
}

impl PartialEq for Term {
    #[inline]
    fn eq(&self, other: &Term) -> bool {
        match (self, other) {
            // Fixed-size compares, no call: the padding is always zero.
            (Term::Inline(a, x), Term::Inline(b, y)) => a == b && x == y,
            (Term::Heap(x), Term::Heap(y)) => x == y,
            // A text has one form (by its length), so the forms never hold equal texts.
            _ => false,
        }
    }
}

impl Eq for Term {}

impl Hash for Term {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
    }
}

impl std::fmt::Debug for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A `&str` looking up a [`Term`]: hashed and compared as that term.
#[derive(Clone, Copy)]
pub struct Text<'a>(pub &'a str);

impl Hash for Text<'_> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0.as_bytes());
    }
}

impl hashbrown::Equivalent<Term> for Text<'_> {
    #[inline]
    fn equivalent(&self, key: &Term) -> bool {
        key.as_bytes() == self.0.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{TermMap, TermState};
    use std::hash::BuildHasher;

    #[test]
    fn terms_and_texts_hash_and_compare_alike_at_every_length() {
        let mut m: TermMap<Term, usize> = TermMap::default();
        let texts: Vec<String> = (0..70)
            .map(|n| "é".repeat(n / 2) + &"x".repeat(n % 2))
            .collect();
        for (i, t) in texts.iter().enumerate() {
            let term = Term::new(t);
            assert_eq!(term.as_str(), t);
            assert_eq!(term.as_bytes(), t.as_bytes());
            assert_eq!(TermState.hash_one(&term), TermState.hash_one(Text(t)));
            assert!(matches!(term, Term::Inline(..)) == (t.len() <= INLINE));
            m.insert(term, i);
        }
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(m.get(&Text(t)), Some(&i), "{t:?}");
            assert_eq!(m.get(&Term::new(t)), Some(&i));
        }
        assert_eq!(m.get(&Text("not there")), None);
        // Same length, different text; a prefix; the empty text.
        assert!(Term::new("user-00001") != Term::new("user-00002"));
        assert!(Term::new("user") != Term::new("user-"));
        assert_eq!(Term::new(""), Term::new(""));
    }
}
