//! The RFC 9162 (formerly RFC 6962) Merkle tree over SHA-256: tree heads,
//! the incremental right edge a log writer keeps ([`Frontier`]), and
//! inclusion and consistency proofs with their verifiers.
//!
//! Hashes are domain-separated (RFC 9162 §2.1.1): a leaf is
//! `SHA-256(0x00 || data)`, an interior node `SHA-256(0x01 || left || right)`,
//! and the empty tree `SHA-256("")`, so a leaf can never be passed off as a
//! node. The split rule is RFC 9162's "largest power of two smaller than n",
//! not the midpoint; any other rule builds a tree no other log tool agrees
//! with.
//!
//! Proof *generation* here takes the leaf hashes in memory and rehashes the
//! subtrees it needs (O(n)); a log with a tile or node store builds proofs
//! from stored nodes instead. Proof *verification* is O(log n) and needs
//! only the proof.

use super::AuditError;
use crate::crypto::{sha256, sha256_concat};

/// A SHA-256 value: a leaf hash, an interior node or a tree head.
pub type Hash = [u8; 32];

/// At most 64 perfect subtrees make up a tree of up to 2⁶⁴−1 leaves: one per
/// set bit of the size.
const MAX_PEAKS: usize = 64;

/// The RFC 9162 leaf hash: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    sha256_concat(&[&[0x00], data])
}

/// The RFC 9162 interior node hash: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    // One stack buffer and a one-shot hash: this runs once per level on
    // every append, so it must not allocate.
    let mut buf = [0u8; 65];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    sha256(&buf)
}

/// The head of the empty tree: `SHA-256("")` (RFC 9162 §2.1.1).
pub fn empty_root() -> Hash {
    sha256(&[])
}

/// The Merkle tree head `MTH` of `leaves` (leaf hashes, in log order).
///
/// O(n) hashing, O(log n) stack, no heap allocation.
pub fn root(leaves: &[Hash]) -> Hash {
    Frontier::from_leaves(leaves).root()
}

/// The right edge of a growing tree: the roots of the perfect subtrees
/// ("peaks") that the tree of `size` leaves splits into, largest first —
/// one per set bit of `size`. This is the compact range `[0, size)` of
/// transparency-dev's `compact` package.
///
/// It is all a writer needs to keep in order to append a leaf and compute
/// the new tree head in O(log n), and it is small (at most 64 hashes), so a
/// writer persists it with [`Frontier::hashes`] and [`Frontier::size`] and
/// restores it with [`Frontier::from_parts`].
///
/// The peaks live in a fixed array, so `push` and `root` never allocate.
#[derive(Clone)]
pub struct Frontier {
    size: u64,
    peaks: [Hash; MAX_PEAKS],
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Self {
            size: 0,
            peaks: [[0u8; 32]; MAX_PEAKS],
        }
    }

    /// The frontier of the tree whose leaves are `leaves` (O(n)).
    pub fn from_leaves(leaves: &[Hash]) -> Self {
        let mut f = Self::new();
        for l in leaves {
            f.push(*l);
        }
        f
    }

    /// Restores a frontier saved from [`Frontier::size`] and
    /// [`Frontier::hashes`]. Fails unless there is exactly one hash per set
    /// bit of `size`. The hashes themselves can't be checked here: restore
    /// only what you wrote, and compare the resulting [`Frontier::root`]
    /// with the last signed checkpoint.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, AuditError> {
        if hashes.len() != size.count_ones() as usize {
            return Err(AuditError::InvalidFrontier(
                "the number of hashes must equal the number of set bits in the size",
            ));
        }
        let mut f = Self::new();
        f.peaks[..hashes.len()].copy_from_slice(&hashes);
        f.size = size;
        Ok(f)
    }

    /// Appends one leaf hash (see [`leaf_hash`]). O(log n) worst case,
    /// amortised two node hashes per leaf; never allocates.
    ///
    /// # Panics
    ///
    /// If the tree already holds 2⁶⁴−1 leaves.
    pub fn push(&mut self, leaf: Hash) {
        let new_size = self
            .size
            .checked_add(1)
            .expect("a Merkle tree holds at most 2^64-1 leaves");
        let mut len = self.size.count_ones() as usize;
        let mut h = leaf;
        // Each trailing one bit of the old size is a peak of the same height
        // as the subtree being carried up: merge them, like binary addition.
        let mut s = self.size;
        while s & 1 == 1 {
            len -= 1;
            h = node_hash(&self.peaks[len], &h);
            s >>= 1;
        }
        self.peaks[len] = h;
        self.size = new_size;
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The peaks, largest (leftmost) subtree first; there are
    /// `size().count_ones()` of them.
    pub fn hashes(&self) -> &[Hash] {
        &self.peaks[..self.size.count_ones() as usize]
    }

    /// The tree head `MTH` of the leaves pushed so far (O(log n)).
    pub fn root(&self) -> Hash {
        // MTH splits off the largest perfect subtree on the left and recurses
        // on the right, so the head folds the peaks from the right.
        match self.hashes().split_last() {
            None => empty_root(),
            Some((last, rest)) => rest.iter().rev().fold(*last, |r, p| node_hash(p, &r)),
        }
    }
}

impl Default for Frontier {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for Frontier {
    fn eq(&self, other: &Self) -> bool {
        // Slots past the live peaks hold stale values; they don't count.
        self.size == other.size && self.hashes() == other.hashes()
    }
}

impl Eq for Frontier {}

impl core::fmt::Debug for Frontier {
    // Written by hand so only the live peaks are shown, in hex.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        struct Hex<'a>(&'a Hash);
        impl core::fmt::Debug for Hex<'_> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
        f.debug_struct("Frontier")
            .field("size", &self.size)
            .field("hashes", &self.hashes().iter().map(Hex).collect::<Vec<_>>())
            .finish()
    }
}

/// The largest power of two strictly smaller than `n` (RFC 9162 §2.1.1's
/// `k`). Requires `n >= 2`.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// `MTH(leaves[lo..hi])`.
fn subtree_root(leaves: &[Hash], lo: u64, hi: u64) -> Hash {
    // Callers have checked hi <= leaves.len(), so these casts are lossless.
    root(&leaves[lo as usize..hi as usize])
}

fn check_tree_size(leaves: &[Hash], size: u64) -> Result<(), AuditError> {
    if size > leaves.len() as u64 {
        return Err(AuditError::OutOfRange(
            "the tree size is larger than the number of leaves given",
        ));
    }
    Ok(())
}

/// The inclusion proof (audit path) of leaf `index` in the tree made of the
/// first `size` of `leaves` — RFC 9162 §2.1.3.1 `PATH(index, D[0:size])`,
/// ordered from the leaf's sibling up to the root's child.
///
/// Computes the sibling subtrees from the leaves: O(size) hashing.
pub fn inclusion_proof(leaves: &[Hash], index: u64, size: u64) -> Result<Vec<Hash>, AuditError> {
    check_tree_size(leaves, size)?;
    if index >= size {
        return Err(AuditError::OutOfRange(
            "the leaf index must be smaller than the tree size",
        ));
    }
    // Walk down from the root; each level contributes the subtree on the
    // side the leaf is not on. RFC 9162 lists them bottom-up, hence the
    // reverse at the end.
    let mut path = Vec::with_capacity(64 - size.leading_zeros() as usize);
    let (mut lo, mut n, mut m) = (0u64, size, index);
    while n > 1 {
        let k = split_point(n);
        if m < k {
            path.push(subtree_root(leaves, lo + k, lo + n));
            n = k;
        } else {
            path.push(subtree_root(leaves, lo, lo + k));
            lo += k;
            m -= k;
            n -= k;
        }
    }
    path.reverse();
    Ok(path)
}

/// The consistency proof between the tree of the first `old` leaves and the
/// tree of the first `new` leaves — RFC 9162 §2.1.4.1 `PROOF(old, D[0:new])`.
/// Empty when `old` is 0 or equals `new` (nothing to prove).
///
/// Computes the subtrees from the leaves: O(new) hashing.
pub fn consistency_proof(leaves: &[Hash], old: u64, new: u64) -> Result<Vec<Hash>, AuditError> {
    check_tree_size(leaves, new)?;
    if old > new {
        return Err(AuditError::OutOfRange(
            "the old tree size must not be larger than the new one",
        ));
    }
    proof_nodes(old, new, |lo, hi| Ok(subtree_root(leaves, lo, hi)))
}

/// The consistency proof from the tree `old` to that tree with `appended`
/// leaves added, from the old tree's [`Frontier`] and the new leaves only:
/// O(appended) hashing whatever the old tree's size. This is how a log
/// proves each new checkpoint to a witness without rereading its history.
///
/// Every node of a consistency proof is a subtree lying wholly in the old
/// tree or wholly in the appended leaves (RFC 9162's `SUBPROOF` splits at
/// a power of two `k` and recurses into the half holding the old tree's
/// edge); the old-tree ones are the frontier's peaks, or the fold of its
/// last peaks when the old tree's right edge is itself a node.
pub fn consistency_proof_extending(
    old: &Frontier,
    appended: &[Hash],
) -> Result<Vec<Hash>, AuditError> {
    let mut leaves = appended.iter().copied();
    extend_with_proof(old, appended.len() as u64, || leaves.next()).map(|(proof, _)| proof)
}

/// [`consistency_proof_extending`] over `count` new leaves read one at a
/// time from `next`, each once, in O(log n) memory; also returns the
/// frontier of the extended tree. A log far ahead of its witness streams
/// the entries in between from disk instead of holding them all. Fails
/// with [`AuditError::OutOfRange`] if `next` ends before `count` leaves.
pub fn extend_with_proof(
    old: &Frontier,
    count: u64,
    mut next: impl FnMut() -> Option<Hash>,
) -> Result<(Vec<Hash>, Frontier), AuditError> {
    let m = old.size();
    let new = m.checked_add(count).ok_or(AuditError::OutOfRange(
        "the tree would exceed 2^64-1 leaves",
    ))?;
    // The proof's shape first: old-tree nodes from the peaks at once,
    // new-tree nodes as (call order, range) to fill while streaming.
    let mut pending: Vec<(usize, u64, u64)> = Vec::new();
    let mut calls = 0usize;
    let mut proof = proof_nodes(m, new, |lo, hi| {
        calls += 1;
        if lo >= m {
            pending.push((calls - 1, lo, hi));
            return Ok([0u8; 32]);
        }
        old_tree_node(old, lo, hi)
    })?;
    // proof_nodes reverses its calls' order.
    let pos = |call: usize| proof.len() - 1 - call;
    let slots: Vec<(usize, u64, u64)> = {
        let mut v: Vec<_> = pending
            .iter()
            .map(|&(c, lo, hi)| (pos(c), lo, hi))
            .collect();
        // The new-tree nodes are disjoint ranges: stream them in order.
        v.sort_by_key(|&(_, lo, _)| lo);
        v
    };
    let mut extended = old.clone();
    let mut slot = slots.iter().peekable();
    let mut acc: Option<(usize, u64, Frontier)> = None;
    for i in m..new {
        let h = next().ok_or(AuditError::OutOfRange(
            "fewer new leaves than the extended tree's size needs",
        ))?;
        extended.push(h);
        if let Some(&&(at, lo, hi)) = slot.peek()
            && lo == i
        {
            slot.next();
            acc = Some((at, hi, Frontier::new()));
        }
        if let Some((at, hi, f)) = &mut acc {
            f.push(h);
            if i + 1 == *hi {
                proof[*at] = f.root();
                acc = None;
            }
        }
    }
    Ok((proof, extended))
}

/// `MTH(D[lo:hi])` for a range of the tree `old` made of its peaks (the
/// peaks covering [lo, hi) exactly, folded from the right like
/// `Frontier::root`).
fn old_tree_node(old: &Frontier, lo: u64, hi: u64) -> Result<Hash, AuditError> {
    let m = old.size();
    let (mut start, mut width) = (0u64, 0u64);
    let mut covered: Vec<&Hash> = Vec::new();
    let bits = (0..64u32).rev().filter(|b| m >> b & 1 == 1);
    for (bit, peak) in bits.zip(old.hashes()) {
        let end = start + (1u64 << bit);
        if start >= lo && end <= hi {
            covered.push(peak);
            width += 1 << bit;
        }
        start = end;
    }
    match covered.split_last() {
        Some((last, rest)) if width == hi - lo => {
            Ok(rest.iter().rev().fold(**last, |r, p| node_hash(p, &r)))
        }
        _ => Err(AuditError::InvalidFrontier(
            "a proof node is not made of the old tree's peaks",
        )),
    }
}

/// `SUBPROOF(old, D[0:new], true)` (RFC 9162 §2.1.4.1), unrolled top-down,
/// with `mth(lo, hi)` giving `MTH(D[lo:hi])` for each node it needs.
fn proof_nodes(
    old: u64,
    new: u64,
    mut mth: impl FnMut(u64, u64) -> Result<Hash, AuditError>,
) -> Result<Vec<Hash>, AuditError> {
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    // Reversed at the end because RFC 9162 emits the deepest node first.
    let mut proof = Vec::with_capacity(2 * (64 - new.leading_zeros() as usize));
    let (mut lo, mut n, mut m, mut whole_old_tree) = (0u64, new, old, true);
    loop {
        if m == n {
            // The old tree's root is a node of the new tree. The verifier
            // already has it when it is the whole old tree; otherwise it is
            // part of the proof.
            if !whole_old_tree {
                proof.push(mth(lo, lo + n)?);
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            proof.push(mth(lo + k, lo + n)?);
            n = k;
        } else {
            proof.push(mth(lo, lo + k)?);
            lo += k;
            m -= k;
            n -= k;
            whole_old_tree = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Checks that `leaf` (a leaf hash) is leaf number `index` of the tree of
/// `size` leaves whose head is `root`, using the RFC 9162 §2.1.3.2
/// algorithm.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), AuditError> {
    if index >= size {
        return Err(AuditError::OutOfRange(
            "the leaf index must be smaller than the tree size",
        ));
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(AuditError::InvalidProof(
                "the inclusion proof is longer than the tree is deep",
            ));
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                // Right edge of an imperfect tree: skip the levels where
                // this node has no right sibling.
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(AuditError::InvalidProof(
            "the inclusion proof is shorter than the tree is deep",
        ));
    }
    if r != *root {
        return Err(AuditError::InvalidProof(
            "the inclusion proof does not lead to the tree head",
        ));
    }
    Ok(())
}

/// Checks that the tree of `old` leaves with head `old_root` is a prefix of
/// the tree of `new` leaves with head `new_root`, using the RFC 9162
/// §2.1.4.2 algorithm.
///
/// Edge cases, which RFC 9162 leaves to the caller: `old == new` needs an
/// empty proof and equal heads; `old == 0` needs an empty proof and
/// `old_root` equal to [`empty_root`] (every tree extends the empty one, but
/// a size-0 head that is not the empty hash is not a valid head).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), AuditError> {
    if old > new {
        return Err(AuditError::OutOfRange(
            "the old tree size must not be larger than the new one",
        ));
    }
    if old == new || old == 0 {
        if !proof.is_empty() {
            return Err(AuditError::InvalidProof(
                "a consistency proof from an empty or equal-size tree must be empty",
            ));
        }
        if old == new && old_root != new_root {
            return Err(AuditError::InvalidProof(
                "two tree heads of the same size differ: the log forked",
            ));
        }
        if old == 0 && *old_root != empty_root() {
            return Err(AuditError::InvalidProof(
                "the head of the empty tree must be SHA-256 of the empty string",
            ));
        }
        return Ok(());
    }
    let (first, rest) = match proof.split_first() {
        None => return Err(AuditError::InvalidProof("the consistency proof is empty")),
        Some(x) => x,
    };
    // Step 2: when the old tree is a perfect tree, its head is the first
    // node of the path and the proof omits it.
    let (seed, path) = if old.is_power_of_two() {
        (old_root, proof)
    } else {
        (first, rest)
    };
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*seed, *seed);
    for c in path {
        if snode == 0 {
            return Err(AuditError::InvalidProof(
                "the consistency proof is longer than the tree is deep",
            ));
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(AuditError::InvalidProof(
            "the consistency proof is shorter than the tree is deep",
        ));
    }
    if fr != *old_root {
        return Err(AuditError::InvalidProof(
            "the consistency proof does not lead to the old tree head",
        ));
    }
    if sr != *new_root {
        return Err(AuditError::InvalidProof(
            "the consistency proof does not lead to the new tree head",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // RFC 6962 reference vectors as published by transparency-dev/merkle,
    // proof/verify_test.go (data only; the same values are in
    // google/certificate-transparency-go's merkletree tests). Leaves are raw
    // entries; the roots are MTH for sizes 1..=8. Proof vectors there are
    // written with 1-based leaf numbers; below they are 0-based indices.
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    const EMPTY_ROOT: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// (index, size, proof)
    const INCLUSION: &[(u64, u64, &[&str])] = &[
        (0, 1, &[]),
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];

    /// (old, new, proof)
    const CONSISTENCY: &[(u64, u64, &[&str])] = &[
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            7,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];

    fn h(s: &str) -> Hash {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    fn hs(v: &[&str]) -> Vec<Hash> {
        v.iter().map(|s| h(s)).collect()
    }

    fn vector_leaves() -> Vec<Hash> {
        LEAVES
            .iter()
            .map(|l| leaf_hash(&hex::decode(l).unwrap()))
            .collect()
    }

    fn leaves_n(n: usize) -> Vec<Hash> {
        (0..n as u32).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// The RFC 9162 §2.1.1 definition, recursively, as an oracle.
    fn mth_reference(d: &[Hash]) -> Hash {
        match d.len() {
            0 => empty_root(),
            1 => d[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&mth_reference(&d[..k]), &mth_reference(&d[k..]))
            }
        }
    }

    #[test]
    fn published_roots() {
        assert_eq!(empty_root(), h(EMPTY_ROOT));
        assert_eq!(root(&[]), h(EMPTY_ROOT));
        let leaves = vector_leaves();
        let mut f = Frontier::new();
        for (n, want) in ROOTS.iter().enumerate() {
            assert_eq!(root(&leaves[..=n]), h(want), "size {}", n + 1);
            f.push(leaves[n]);
            assert_eq!(f.root(), h(want), "frontier size {}", n + 1);
        }
    }

    #[test]
    fn published_inclusion_proofs() {
        let leaves = vector_leaves();
        for (index, size, want) in INCLUSION {
            let proof = inclusion_proof(&leaves, *index, *size).unwrap();
            assert_eq!(proof, hs(want), "index {index} size {size}");
            let r = h(ROOTS[*size as usize - 1]);
            verify_inclusion(&leaves[*index as usize], *index, *size, &proof, &r).unwrap();
        }
    }

    #[test]
    fn published_consistency_proofs() {
        let leaves = vector_leaves();
        for (old, new, want) in CONSISTENCY {
            let proof = consistency_proof(&leaves, *old, *new).unwrap();
            assert_eq!(proof, hs(want), "{old} -> {new}");
            let (r1, r2) = (h(ROOTS[*old as usize - 1]), h(ROOTS[*new as usize - 1]));
            verify_consistency(*old, *new, &r1, &r2, &proof).unwrap();
        }
    }

    #[test]
    fn corrupted_published_proofs_fail() {
        // The probes of transparency-dev/merkle's corruptInclusionProof and
        // corruptConsistencyProof, applied to the published vectors.
        let leaves = vector_leaves();
        let some = h("abacaba000000000000000000000000000000000000000000060061e00123456");
        for (index, size, p) in INCLUSION {
            let (i, n, proof) = (*index, *size, hs(p));
            let r = h(ROOTS[n as usize - 1]);
            let leaf = leaves[i as usize];
            let bad = |i: u64, n: u64, leaf: &Hash, proof: &[Hash], root: &Hash| {
                verify_inclusion(leaf, i, n, proof, root).is_err()
            };
            if i > 0 {
                assert!(bad(i - 1, n, &leaf, &proof, &r));
            }
            assert!(bad(i + 1, n, &leaf, &proof, &r));
            if i ^ 2 < n {
                assert!(bad(i ^ 2, n, &leaf, &proof, &r));
            }
            assert!(bad(i, n * 2, &leaf, &proof, &r));
            assert!(bad(i, n / 2, &leaf, &proof, &r));
            assert!(bad(i, n, &some, &proof, &r));
            assert!(bad(i, n, &leaf, &proof, &empty_root()));
            assert!(bad(i, n, &leaf, &proof, &some));
            let mut longer = proof.clone();
            longer.push(r);
            assert!(bad(i, n, &leaf, &longer, &r));
            let mut longer = vec![r];
            longer.extend_from_slice(&proof);
            assert!(bad(i, n, &leaf, &longer, &r));
            for k in 0..proof.len() {
                let mut p2 = proof.clone();
                p2[k][0] ^= 8;
                assert!(bad(i, n, &leaf, &p2, &r));
            }
            if !proof.is_empty() {
                assert!(bad(i, n, &leaf, &proof[..proof.len() - 1], &r));
            }
        }
        for (old, new, p) in CONSISTENCY {
            let (m, n, proof) = (*old, *new, hs(p));
            if proof.is_empty() {
                continue;
            }
            let (r1, r2) = (h(ROOTS[m as usize - 1]), h(ROOTS[n as usize - 1]));
            let bad = |m: u64, n: u64, r1: &Hash, r2: &Hash, proof: &[Hash]| {
                verify_consistency(m, n, r1, r2, proof).is_err()
            };
            assert!(bad(m - 1, n, &r1, &r2, &proof));
            assert!(bad(m + 1, n, &r1, &r2, &proof));
            assert!(bad(m ^ 2, n, &r1, &r2, &proof));
            assert!(bad(m, n * 2, &r1, &r2, &proof));
            assert!(bad(m, n / 2, &r1, &r2, &proof));
            assert!(bad(m, n, &some, &r2, &proof));
            assert!(bad(m, n, &r1, &some, &proof));
            assert!(bad(m, n, &r2, &r1, &proof));
            assert!(bad(m, n, &r1, &r2, &[]));
            for extra in [r1, r2] {
                let mut longer = proof.clone();
                longer.push(extra);
                assert!(bad(m, n, &r1, &r2, &longer));
                let mut longer = vec![extra];
                longer.extend_from_slice(&proof);
                assert!(bad(m, n, &r1, &r2, &longer));
            }
            let mut longer = vec![proof[0]];
            longer.extend_from_slice(&proof);
            assert!(bad(m, n, &r1, &r2, &longer));
            assert!(bad(m, n, &r1, &r2, &proof[..proof.len() - 1]));
            for k in 0..proof.len() {
                let mut p2 = proof.clone();
                p2[k][0] ^= 16;
                assert!(bad(m, n, &r1, &r2, &p2));
            }
        }
    }

    #[test]
    fn consistency_edge_cases() {
        // After transparency-dev/merkle TestVerifyConsistency, except that a
        // size-0 head must be the empty-tree hash here.
        let (a, b, e) = ([1u8; 32], [2u8; 32], empty_root());
        assert!(verify_consistency(0, 0, &e, &e, &[]).is_ok());
        assert!(verify_consistency(0, 1, &e, &b, &[]).is_ok());
        assert!(verify_consistency(1, 1, &b, &b, &[]).is_ok());
        assert!(verify_consistency(0, 1, &a, &b, &[]).is_err());
        assert!(verify_consistency(1, 1, &a, &b, &[]).is_err());
        assert!(verify_consistency(1, 0, &a, &b, &[]).is_err());
        assert!(verify_consistency(2, 1, &a, &b, &[]).is_err());
        assert!(verify_consistency(1, 2, &a, &b, &[]).is_err());
        assert!(verify_consistency(0, 0, &e, &e, &[e]).is_err());
        assert!(verify_consistency(0, 1, &e, &e, &[e]).is_err());
        assert!(verify_consistency(1, 1, &e, &e, &[e]).is_err());
        assert!(verify_consistency(u64::MAX - 1, u64::MAX, &a, &b, &[a; 70]).is_err());
    }

    #[test]
    fn inclusion_edge_cases() {
        let x = leaf_hash(b"data");
        assert!(verify_inclusion(&x, 0, 1, &[], &x).is_ok());
        assert!(verify_inclusion(&x, 0, 1, &[], &empty_root()).is_err());
        for (i, n) in [(0, 0), (1, 0), (2, 1), (u64::MAX, u64::MAX)] {
            assert!(matches!(
                verify_inclusion(&x, i, n, &[], &x),
                Err(AuditError::OutOfRange(_))
            ));
        }
        assert!(verify_inclusion(&x, 0, u64::MAX, &[x; 100], &x).is_err());
        let leaves = leaves_n(4);
        assert!(inclusion_proof(&leaves, 4, 4).is_err());
        assert!(inclusion_proof(&leaves, 0, 5).is_err());
        assert!(consistency_proof(&leaves, 3, 2).is_err());
        assert!(consistency_proof(&leaves, 1, 5).is_err());
        assert_eq!(
            consistency_proof(&leaves, 0, 4).unwrap(),
            Vec::<Hash>::new()
        );
    }

    #[test]
    fn proofs_from_a_frontier_equal_proofs_from_all_leaves() {
        let leaves: Vec<Hash> = (0u32..70).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for new in 0..=70usize {
            for old in 0..=new {
                let from_leaves = consistency_proof(&leaves, old as u64, new as u64).unwrap();
                let f = Frontier::from_leaves(&leaves[..old]);
                let extending = consistency_proof_extending(&f, &leaves[old..new]).unwrap();
                assert_eq!(extending, from_leaves, "old {old} new {new}");
                let mut it = leaves[old..new].iter().copied();
                let (_, extended) =
                    extend_with_proof(&f, (new - old) as u64, || it.next()).unwrap();
                assert_eq!(extended, Frontier::from_leaves(&leaves[..new]));
                let mut short = leaves[old..new].iter().copied().skip(1);
                assert_eq!(
                    extend_with_proof(&f, (new - old) as u64, || short.next()).is_err(),
                    new > old
                );
                verify_consistency(
                    old as u64,
                    new as u64,
                    &root(&leaves[..old]),
                    &root(&leaves[..new]),
                    &extending,
                )
                .unwrap();
            }
        }
    }

    #[test]
    fn split_point_is_rfc9162() {
        for (n, k) in [(2, 1), (3, 2), (4, 2), (5, 4), (8, 4), (9, 8), (1000, 512)] {
            assert_eq!(split_point(n), k);
        }
        assert_eq!(split_point(u64::MAX), 1 << 63);
        assert_eq!(split_point((1 << 63) + 1), 1 << 63);
    }

    #[test]
    fn frontier_persists_and_restores() {
        let leaves = leaves_n(23);
        let f = Frontier::from_leaves(&leaves[..13]);
        assert_eq!(f.hashes().len(), 3);
        let mut g = Frontier::from_parts(f.size(), f.hashes().to_vec()).unwrap();
        assert_eq!(f, g);
        for l in &leaves[13..] {
            g.push(*l);
        }
        assert_eq!(g, Frontier::from_leaves(&leaves));
        assert_eq!(g.root(), root(&leaves));
        assert!(matches!(
            Frontier::from_parts(13, vec![[0; 32]; 2]),
            Err(AuditError::InvalidFrontier(_))
        ));
        assert!(Frontier::from_parts(0, vec![]).unwrap().root() == empty_root());
        assert!(format!("{f:?}").starts_with("Frontier { size: 13, hashes: ["));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn roots_agree_with_the_definition(n in 0usize..300) {
            let leaves = leaves_n(n);
            let want = mth_reference(&leaves);
            prop_assert_eq!(root(&leaves), want);
            let f = Frontier::from_leaves(&leaves);
            prop_assert_eq!(f.root(), want);
            prop_assert_eq!(f.size(), n as u64);
            prop_assert_eq!(f.hashes().len(), n.count_ones() as usize);
        }

        #[test]
        fn every_inclusion_proof_verifies(n in 1u64..200, seed in any::<u64>()) {
            let leaves = leaves_n(n as usize);
            let r = root(&leaves);
            for i in 0..n {
                let proof = inclusion_proof(&leaves, i, n).unwrap();
                prop_assert!(verify_inclusion(&leaves[i as usize], i, n, &proof, &r).is_ok());
            }
            // One random leaf: any single flipped bit anywhere fails.
            let i = seed % n;
            let proof = inclusion_proof(&leaves, i, n).unwrap();
            let bit = (seed >> 32) as usize % 256;
            let flip = |mut x: Hash| { x[bit / 8] ^= 1 << (bit % 8); x };
            let leaf = leaves[i as usize];
            prop_assert!(verify_inclusion(&flip(leaf), i, n, &proof, &r).is_err());
            prop_assert!(verify_inclusion(&leaf, i, n, &proof, &flip(r)).is_err());
            for k in 0..proof.len() {
                let mut p2 = proof.clone();
                p2[k] = flip(p2[k]);
                prop_assert!(verify_inclusion(&leaf, i, n, &p2, &r).is_err());
            }
        }

        #[test]
        fn every_consistency_proof_verifies(n in 1u64..200, seed in any::<u64>()) {
            let leaves = leaves_n(n as usize);
            let roots: Vec<Hash> = (0..=n).map(|m| root(&leaves[..m as usize])).collect();
            for m in 0..=n {
                let proof = consistency_proof(&leaves, m, n).unwrap();
                prop_assert!(
                    verify_consistency(m, n, &roots[m as usize], &roots[n as usize], &proof).is_ok(),
                    "{} -> {}", m, n
                );
            }
            let m = 1 + seed % n;
            let proof = consistency_proof(&leaves, m, n).unwrap();
            let bit = (seed >> 32) as usize % 256;
            let flip = |mut x: Hash| { x[bit / 8] ^= 1 << (bit % 8); x };
            let (r1, r2) = (roots[m as usize], roots[n as usize]);
            prop_assert!(verify_consistency(m, n, &flip(r1), &r2, &proof).is_err());
            prop_assert!(verify_consistency(m, n, &r1, &flip(r2), &proof).is_err());
            for k in 0..proof.len() {
                let mut p2 = proof.clone();
                p2[k] = flip(p2[k]);
                prop_assert!(verify_consistency(m, n, &r1, &r2, &p2).is_err());
            }
        }

        #[test]
        fn verifiers_never_panic(
            leaf in any::<[u8; 32]>(),
            a in any::<u64>(),
            b in any::<u64>(),
            proof in prop::collection::vec(any::<[u8; 32]>(), 0..70),
            r in any::<[u8; 32]>(),
        ) {
            let _ = verify_inclusion(&leaf, a, b, &proof, &r);
            let _ = verify_consistency(a, b, &leaf, &r, &proof);
            let _ = verify_consistency(a.min(b), a.max(b), &leaf, &r, &proof);
        }
    }
}
