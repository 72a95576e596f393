"""Build kernels of the sparse index: posting lists, static pruning, block clustering, summaries (numba)."""

from __future__ import annotations

import numba as nb
import numpy as np

from retrievo.errors import InvalidInputError
from retrievo.indexes.sparse.params import _MAX_BLOCKS

# ------------------------------------------------------------------------------------------- build kernels


@nb.njit(nogil=True, cache=True)
def _invert(f_indptr, f_terms, f_w, vocab_size):  # pragma: no cover - compiled
    """Term-major postings of a document-major CSR, documents ascending inside each list."""
    ptr = np.zeros(vocab_size + 1, dtype=np.int64)
    for j in range(len(f_terms)):
        ptr[np.int64(f_terms[j]) + 1] += 1
    for t in range(vocab_size):
        ptr[t + 1] += ptr[t]
    pos = ptr[:-1].copy()
    docs = np.empty(len(f_terms), dtype=np.int32)
    w = np.empty(len(f_terms), dtype=np.float32)
    for d in range(len(f_indptr) - 1):
        for j in range(f_indptr[d], f_indptr[d + 1]):
            t = np.int64(f_terms[j])
            p = pos[t]
            docs[p] = d
            w[p] = f_w[j]
            pos[t] = p + 1
    return ptr, docs, w


@nb.njit(nogil=True, cache=True)
def _prune(p_indptr, p_docs, p_w, thr, cap):  # pragma: no cover - compiled
    """Keep the entries >= thr of each list, at most its ``cap`` largest; documents stay ascending."""
    v = len(p_indptr) - 1
    longest = 0
    for t in range(v):
        longest = max(longest, p_indptr[t + 1] - p_indptr[t])
    buf = np.empty(longest, dtype=np.float32)
    kth = np.empty(v, dtype=np.float32)
    ptr = np.zeros(v + 1, dtype=np.int64)
    for t in range(v):
        n = 0
        for p in range(p_indptr[t], p_indptr[t + 1]):
            if p_w[p] >= thr:
                buf[n] = p_w[p]
                n += 1
        if n > cap:
            kth[t] = np.partition(buf[:n], n - cap)[n - cap]
            ptr[t + 1] = cap
        else:
            kth[t] = thr
            ptr[t + 1] = n
    for t in range(v):
        ptr[t + 1] += ptr[t]
    out = np.empty(ptr[v], dtype=np.int32)
    for t in range(v):
        c = kth[t]
        above = 0
        for p in range(p_indptr[t], p_indptr[t + 1]):
            if p_w[p] > c:
                above += 1
        ties = ptr[t + 1] - ptr[t] - above  # entries equal to the cut that still fit
        o = ptr[t]
        for p in range(p_indptr[t], p_indptr[t + 1]):
            w = p_w[p]
            if w > c or (w == c and ties > 0):
                if w == c:
                    ties -= 1
                out[o] = p_docs[p]
                o += 1
    return ptr, out


@nb.njit(nogil=True, cache=True)
def _doc_cut(f_indptr, f_terms, f_w, cut):  # pragma: no cover - compiled
    """Each row's ``cut`` largest entries (term -1 pads)."""
    n = len(f_indptr) - 1
    ct = np.full((n, cut), -1, dtype=np.int32)
    cw = np.zeros((n, cut), dtype=np.float32)
    for d in range(n):
        s, e = f_indptr[d], f_indptr[d + 1]
        if e - s <= cut:
            for j in range(s, e):
                ct[d, j - s] = f_terms[j]
                cw[d, j - s] = f_w[j]
        else:
            order = np.argsort(-f_w[s:e])
            for r in range(cut):
                ct[d, r] = f_terms[s + order[r]]
                cw[d, r] = f_w[s + order[r]]
    return ct, cw


@nb.njit(nogil=True, cache=True)
def _cluster_lists(t0, t1, pr_indptr, pr_docs, f_indptr, f_terms, f_w, cut_t, cut_w, beta, min_size, seed,
                   vocab_size, n_blocks, block_of):  # pragma: no cover - compiled
    """Cluster the pruned lists t0..t1 in place: documents reordered by block (ascending inside a block),
    ``block_of[p]`` the block of posting p, ``n_blocks[t]`` the number of blocks of list t."""
    longest = 1
    for t in range(t0, t1):
        longest = max(longest, pr_indptr[t + 1] - pr_indptr[t])
    cnt = np.zeros(vocab_size, dtype=np.int64)
    start = np.zeros(vocab_size, dtype=np.int64)
    perm = np.empty(longest, dtype=np.int64)
    assign = np.empty(longest, dtype=np.int64)
    tmp = np.empty(longest, dtype=np.int32)
    scores = np.zeros(min(longest, _MAX_BLOCKS), dtype=np.float32)
    sizes = np.zeros(min(longest, _MAX_BLOCKS) + 1, dtype=np.int64)
    removed = np.zeros(min(longest, _MAX_BLOCKS), dtype=np.bool_)
    touched = np.empty(16, dtype=np.int64)
    bc = np.empty(16, dtype=np.int32)
    bw = np.empty(16, dtype=np.float32)
    for t in range(t0, t1):
        s, e = pr_indptr[t], pr_indptr[t + 1]
        n = e - s
        m = min(max(1, int(beta * n)), n, _MAX_BLOCKS)
        if n == 0:
            n_blocks[t] = 0
            continue
        if m == 1:
            n_blocks[t] = 1
            block_of[s:e] = 0
            continue
        # m distinct random centroids (partial Fisher-Yates)
        np.random.seed(seed * 1000003 + t)
        for i in range(n):
            perm[i] = i
        for i in range(m):
            j = np.random.randint(i, n)
            perm[i], perm[j] = perm[j], perm[i]
        # inverted index over the centroids' full vectors: term -> (centroid, weight)
        n_t = 0
        total = 0
        for c in range(m):
            d = pr_docs[s + perm[c]]
            for j in range(f_indptr[d], f_indptr[d + 1]):
                u = np.int64(f_terms[j])
                if cnt[u] == 0:
                    if n_t == len(touched):
                        grown = np.empty(2 * n_t, dtype=np.int64)
                        grown[:n_t] = touched
                        touched = grown
                    touched[n_t] = u
                    n_t += 1
                cnt[u] += 1
                total += 1
        if total > len(bc):
            bc = np.empty(2 * total, dtype=np.int32)
            bw = np.empty(2 * total, dtype=np.float32)
        run = 0
        for i in range(n_t):
            u = touched[i]
            start[u] = run
            run += cnt[u]
            cnt[u] = 0
        for c in range(m):
            d = pr_docs[s + perm[c]]
            for j in range(f_indptr[d], f_indptr[d + 1]):
                u = np.int64(f_terms[j])
                q = start[u] + cnt[u]
                bc[q] = c
                bw[q] = f_w[j]
                cnt[u] += 1
        removed[:m] = False
        for rnd in range(2):
            for i in range(n):
                if rnd == 1 and not removed[assign[i]]:
                    continue
                d = pr_docs[s + i]
                scores[:m] = 0.0
                for r in range(cut_t.shape[1]):
                    u = cut_t[d, r]
                    if u < 0:
                        break
                    c_n = cnt[u]
                    if c_n == 0:
                        continue
                    w = cut_w[d, r]
                    b0 = start[u]
                    for q in range(b0, b0 + c_n):
                        scores[bc[q]] += w * bw[q]
                best = -1
                best_s = np.float32(-1.0)
                for c in range(m):
                    if scores[c] > best_s and not removed[c]:
                        best_s = scores[c]
                        best = c
                assign[i] = best
            if rnd == 1 or min_size <= 1:
                break
            sizes[:m] = 0
            for i in range(n):
                sizes[assign[i]] += 1
            n_keep = 0
            for c in range(m):
                if sizes[c] >= min_size:
                    n_keep += 1
            if n_keep == 0:
                break  # every cluster is small: keep them as they are
            any_removed = False
            for c in range(m):
                if 0 < sizes[c] < min_size:
                    removed[c] = True
                    any_removed = True
            if not any_removed:
                break
        for i in range(n_t):
            cnt[touched[i]] = 0
        # number the non-empty clusters 0..nb-1 (centroid order) and sort the postings by block, stably
        sizes[: m + 1] = 0
        for i in range(n):
            sizes[assign[i] + 1] += 1
        nb_ = 0
        for c in range(m):
            if sizes[c + 1] > 0:
                nb_ += 1
        n_blocks[t] = nb_
        for c in range(m):
            sizes[c + 1] += sizes[c]
        bid = np.empty(m, dtype=np.int64)
        b = 0
        for c in range(m):
            if sizes[c + 1] > sizes[c]:
                bid[c] = b
                b += 1
        for i in range(n):
            c = assign[i]
            q = sizes[c]
            tmp[q] = pr_docs[s + i]
            block_of[s + q] = bid[c]
            sizes[c] = q + 1
        pr_docs[s:e] = tmp[:n]


@nb.njit(nogil=True, cache=True, inline="always")
def _grow(a, need):  # pragma: no cover - compiled
    if need <= len(a):
        return a
    b = np.empty(max(need, 2 * len(a)), dtype=a.dtype)
    b[: len(a)] = a
    return b


_NBUCKETS = 256


@nb.njit(nogil=True, cache=True)
def _summaries(t0, t1, block_ptr, block_off, pr_docs, f_indptr, f_terms, f_w, alpha, vocab_size,
               n_uterms, b_step, blk_template):  # pragma: no cover - compiled
    """Quantised, energy-pruned block summaries of lists t0..t1, stored transposed per list.

    Returns ``(uterms, ucount, e_block, e_code)`` for these lists, in list order: each list's summary terms
    ascending with how many entries each has (a term with more than 255 entries is repeated), and the
    entries (block inside the list, 8-bit code) grouped by term, blocks ascending inside a term.
    ``n_uterms[t]`` (rows of ``uterms`` of list t) and ``b_step[block]`` (quantisation step) are filled.
    """
    mx = np.zeros(vocab_size, dtype=np.float32)
    cnt = np.zeros(vocab_size, dtype=np.int64)
    touched = np.empty(vocab_size, dtype=np.int64)
    vals = np.empty(vocab_size, dtype=np.float32)
    b_mass = np.zeros(_NBUCKETS, dtype=np.float64)
    b_of = np.empty(vocab_size, dtype=np.int32)
    edge = np.empty(vocab_size, dtype=np.int64)
    l_term = np.empty(1024, dtype=np.int64)
    l_block = np.empty(1024, dtype=blk_template.dtype)
    l_code = np.empty(1024, dtype=np.uint8)
    uterms = np.empty(1024, dtype=np.int32)
    ucount = np.empty(1024, dtype=np.uint8)
    e_block = np.empty(4096, dtype=blk_template.dtype)
    e_code = np.empty(4096, dtype=np.uint8)
    n_u = 0
    n_e = 0
    for t in range(t0, t1):
        n_l = 0
        for bi in range(block_ptr[t], block_ptr[t + 1]):
            # per-term maximum over the block's documents
            n_t = 0
            for p in range(block_off[bi], block_off[bi + 1]):
                d = pr_docs[p]
                for j in range(f_indptr[d], f_indptr[d + 1]):
                    u = np.int64(f_terms[j])
                    w = f_w[j]
                    m0 = mx[u]
                    if m0 == 0.0:
                        touched[n_t] = u
                        n_t += 1
                    mx[u] = max(m0, w)
            if n_t == 0:
                b_step[bi] = 0.0
                continue
            total = 0.0
            vmax = np.float32(0.0)
            for i in range(n_t):
                v = mx[touched[i]]
                vals[i] = v
                total += v
                vmax = max(vmax, v)
            # keep the largest entries until they hold alpha of the mass (inclusive): bucket the values
            # linearly below vmax, take whole buckets, sort only the boundary bucket
            b_mass[:] = 0.0
            scale = (_NBUCKETS - 1) / vmax
            for i in range(n_t):
                b = int((vmax - vals[i]) * scale)
                b_of[i] = b
                b_mass[b] += vals[i]
            until = alpha * total
            acc = 0.0
            cut = _NBUCKETS - 1
            for b in range(_NBUCKETS):
                if acc + b_mass[b] >= until:
                    cut = b
                    break
                acc += b_mass[b]
            l_term = _grow(l_term, n_l + n_t)
            l_block = _grow(l_block, n_l + n_t)
            l_code = _grow(l_code, n_l + n_t)
            step = vmax / np.float32(255.0)
            b_step[bi] = step
            local = bi - block_ptr[t]
            n_edge = 0
            for i in range(n_t):
                b = b_of[i]
                if b < cut:
                    code = int(vals[i] / step + 0.5)
                    if code > 0:
                        l_term[n_l] = touched[i]
                        l_block[n_l] = local
                        l_code[n_l] = min(code, 255)
                        n_l += 1
                elif b == cut:
                    edge[n_edge] = i
                    n_edge += 1
            ev = np.empty(n_edge, dtype=np.float32)
            for r in range(n_edge):
                ev[r] = vals[edge[r]]
            order = np.argsort(-ev)
            for r in range(n_edge):
                i = edge[order[r]]
                v = vals[i]
                code = int(v / step + 0.5)
                if code > 0:
                    l_term[n_l] = touched[i]
                    l_block[n_l] = local
                    l_code[n_l] = min(code, 255)
                    n_l += 1
                acc += v
                if acc >= until:
                    break
            for i in range(n_t):
                mx[touched[i]] = 0.0
        # transpose this list's entries: term -> (block, code), terms ascending, blocks ascending per term
        n_t = 0
        for i in range(n_l):
            u = l_term[i]
            if cnt[u] == 0:
                touched[n_t] = u
                n_t += 1
            cnt[u] += 1
        terms_sorted = np.sort(touched[:n_t])
        n_rows_l = 0
        for i in range(n_t):
            n_rows_l += (cnt[terms_sorted[i]] + 254) // 255
        uterms = _grow(uterms, n_u + n_rows_l)
        ucount = _grow(ucount, n_u + n_rows_l)
        e_block = _grow(e_block, n_e + n_l)
        e_code = _grow(e_code, n_e + n_l)
        run = n_e
        r = n_u
        for i in range(n_t):
            u = terms_sorted[i]
            c = cnt[u]
            cnt[u] = run  # becomes the fill position
            run += c
            while c > 0:
                uterms[r] = u
                ucount[r] = min(c, 255)
                c -= 255
                r += 1
        for i in range(n_l):
            u = l_term[i]
            q = cnt[u]
            e_block[q] = l_block[i]
            e_code[q] = l_code[i]
            cnt[u] = q + 1
        for i in range(n_t):
            cnt[touched[i]] = 0
        n_uterms[t] = n_rows_l
        n_u += n_rows_l
        n_e += n_l
    return uterms[:n_u].copy(), ucount[:n_u].copy(), e_block[:n_e].copy(), e_code[:n_e].copy()


_CK = 64  # one absolute entry offset per this many summary terms


@nb.njit(nogil=True, cache=True)
def _checkpoints(s_counts):  # pragma: no cover - compiled
    out = np.empty((len(s_counts) + _CK - 1) // _CK + 1, dtype=np.int64)
    off = 0
    for i in range(len(s_counts)):
        if i % _CK == 0:
            out[i // _CK] = off
        off += s_counts[i]
    out[-1] = off
    return out


@nb.njit(nogil=True, cache=True)
def _quantise_rows_u8(f_indptr, f_w):  # pragma: no cover - compiled
    """Each row's weights as 8-bit codes of ``row max / 255`` steps (rounded), and that step per row."""
    n = len(f_indptr) - 1
    codes = np.empty(len(f_w), dtype=np.uint8)
    scale = np.zeros(n, dtype=np.float32)
    for d in range(n):
        s, e = f_indptr[d], f_indptr[d + 1]
        top = np.float32(0.0)
        for j in range(s, e):
            top = max(top, f_w[j])
        step = top / np.float32(255.0) if top > 0 else np.float32(1.0)
        scale[d] = step
        for j in range(s, e):
            codes[j] = np.uint8(min(255.0, np.floor(f_w[j] / step + np.float32(0.5))))
    return codes, scale




_LEN_BITS = 24  # a posting's packed row extent: forward offset << 24 | row length


def _pack_extents(pr_docs: np.ndarray, f_indptr: np.ndarray) -> np.ndarray:
    """Each posting's forward row as ``offset << 24 | length`` (uint64), as Seismic keeps it: the scoring
    loop then prefetches a document's row straight from the posting, without first loading the row
    bounds of a random document."""
    start = f_indptr[pr_docs]
    length = f_indptr[pr_docs + 1] - start
    if len(length) and (int(length.max()) >= 1 << _LEN_BITS or int(f_indptr[-1]) >= 1 << (64 - _LEN_BITS)):
        raise InvalidInputError("a document has too many non-zeros for the approximate index (2^24 at most)")
    return (start.astype(np.uint64) << np.uint64(_LEN_BITS)) | length.astype(np.uint64)


