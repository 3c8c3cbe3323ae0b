//! Borrowed lists of (name, value) byte-string pairs: series and exemplar labels, metadata fields.
//!
//! Both are `uvarint n` + n × (`str name`, `str value`) on disk. The decoder walks the list once
//! to validate it and keeps the raw bytes; iterating later re-reads them without allocating.

use std::fmt;

use super::primitives::{put_str, put_uvarint, split_str, Decoder, Result};

/// A validated pair list borrowed from a record.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Pairs<'a> {
    /// The encoded pairs, without the leading count.
    data: &'a [u8],
    len: usize,
    byte_len: usize,
}

impl<'a> Pairs<'a> {
    fn decode(
        d: &mut Decoder<'a>,
        count: &'static str,
        name: &'static str,
        value: &'static str,
    ) -> Result<Self> {
        // Each pair needs at least its two length bytes.
        let len = d.count(count, 2)?;
        let start = d.pos();
        let mut byte_len = 0;
        for _ in 0..len {
            byte_len += d.str(name)?.len();
            byte_len += d.str(value)?.len();
        }
        Ok(Pairs {
            data: d.since(start),
            len,
            byte_len,
        })
    }

    fn iter(&self) -> PairIter<'a> {
        PairIter {
            rest: self.data,
            left: self.len,
        }
    }
}

/// Iterator over (name, value) pairs of a [`Labels`] or [`MetadataFields`].
#[derive(Clone, Debug)]
pub struct PairIter<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for PairIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        // The bytes were validated when the list was decoded, so this cannot fail.
        let (name, rest) = split_str(self.rest)?;
        let (value, rest) = split_str(rest)?;
        self.rest = rest;
        self.left -= 1;
        Some((name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for PairIter<'_> {}

fn debug_pairs(f: &mut fmt::Formatter<'_>, it: PairIter<'_>) -> fmt::Result {
    f.debug_map()
        .entries(it.map(|(n, v)| (String::from_utf8_lossy(n), String::from_utf8_lossy(v))))
        .finish()
}

/// Appends `uvarint n` + the pairs, as Prometheus's `EncodeLabels` and metadata encoder do.
pub(crate) fn put_pairs(out: &mut Vec<u8>, pairs: &[(Vec<u8>, Vec<u8>)]) {
    put_uvarint(out, pairs.len() as u64);
    for (name, value) in pairs {
        put_str(out, name);
        put_str(out, value);
    }
}

/// The labels of a series or exemplar, borrowed from the record and already validated.
///
/// Order and uniqueness are not checked (Prometheus's decoder does not check them either).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Labels<'a>(Pairs<'a>);

impl<'a> Labels<'a> {
    pub(crate) fn decode(d: &mut Decoder<'a>) -> Result<Self> {
        Pairs::decode(d, "uvarint label count", "label name", "label value").map(Labels)
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len
    }

    /// True if there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// (name, value) pairs in record order.
    pub fn iter(&self) -> PairIter<'a> {
        self.0.iter()
    }

    /// Sum of the name and value lengths.
    pub fn byte_len(&self) -> usize {
        self.0.byte_len
    }

    /// Value of the first label called `name`.
    pub fn get(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Copies the labels out.
    pub fn to_vec(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect()
    }
}

impl<'a> IntoIterator for &Labels<'a> {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = PairIter<'a>;

    fn into_iter(self) -> PairIter<'a> {
        self.iter()
    }
}

impl fmt::Debug for Labels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_pairs(f, self.0.iter())
    }
}

/// The (name, value) fields of a metadata entry, borrowed and validated. Prometheus writes
/// `UNIT` and `HELP`; readers skip names they do not know.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct MetadataFields<'a>(Pairs<'a>);

impl<'a> MetadataFields<'a> {
    pub(crate) fn decode(d: &mut Decoder<'a>) -> Result<Self> {
        Pairs::decode(d, "uvarint field count", "field name", "field value").map(MetadataFields)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len
    }

    /// True if there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// (name, value) pairs in record order.
    pub fn iter(&self) -> PairIter<'a> {
        self.0.iter()
    }

    /// Value of the last field called `name`; Prometheus's decoder lets a later field
    /// overwrite an earlier one.
    pub fn get_last(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.iter()
            .filter(|(n, _)| *n == name)
            .last()
            .map(|(_, v)| v)
    }

    /// Copies the fields out.
    pub fn to_vec(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect()
    }
}

impl<'a> IntoIterator for &MetadataFields<'a> {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = PairIter<'a>;

    fn into_iter(self) -> PairIter<'a> {
        self.iter()
    }
}

impl fmt::Debug for MetadataFields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_pairs(f, self.0.iter())
    }
}
