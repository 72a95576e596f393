"""Search kernels of the sparse index: the row dot products (scalar, and a gathered one for AVX2/AVX-512, built
with llvmlite intrinsics) and the Seismic block traversal of approximate search (numba)."""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from retrievo.indexes._topk import heap_drain_sorted, heap_push
from retrievo.indexes.sparse.build import _CK, _LEN_BITS

# ------------------------------------------------------------------------------------------ approx search


@intrinsic
def _prefetch(typingctx, arr, idx):  # pragma: no cover - compiled
    """Hint the CPU to fetch ``arr[idx]`` into cache (LLVM's prefetch intrinsic; no effect on results)."""
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])  # read, keep, data cache
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _as_f32(typingctx, x):  # pragma: no cover - compiled
    """A weight as float32: float32 as is, uint16 read as the bits of a float16 (IEEE half)."""
    if x == types.float32:
        return types.float32(x), lambda context, builder, signature, args: args[0]
    if x == types.uint16:
        def codegen(context, builder, signature, args):
            return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

        return types.float32(x), codegen
    if x == types.uint8:  # an 8-bit code, scaled per row by the caller
        def codegen_u8(context, builder, signature, args):
            return builder.uitofp(args[0], ir.FloatType())

        return types.float32(x), codegen_u8
    return None


@nb.njit(nogil=True, cache=True, inline="always")
def _dot_row_scalar(qd, f_terms, f_w, s, e):  # pragma: no cover - compiled
    """Dense query · one forward row, one entry at a time; four accumulators keep the additions (and the
    float16 conversions, which LLVM otherwise chains to the accumulator register) independent."""
    a0 = np.float32(0.0)
    a1 = np.float32(0.0)
    a2 = np.float32(0.0)
    a3 = np.float32(0.0)
    j = s
    while j + 4 <= e:
        a0 += qd[f_terms[j]] * _as_f32(f_w[j])
        a1 += qd[f_terms[j + 1]] * _as_f32(f_w[j + 1])
        a2 += qd[f_terms[j + 2]] * _as_f32(f_w[j + 2])
        a3 += qd[f_terms[j + 3]] * _as_f32(f_w[j + 3])
        j += 4
    while j < e:
        a0 += qd[f_terms[j]] * _as_f32(f_w[j])
        j += 1
    return (a0 + a1) + (a2 + a3)


_LANES = 16  # entries per gather: measured best on AVX-512 (8 and 32 lanes were 5-10 % slower)


class _VectorGEP(ir.instructions.Instruction):
    """``getelementptr T, ptr %base, <n x i32> %idx``: a vector of addresses from one base and a vector of
    indices, which the x86 backend lowers to a gather with 32-bit indices (vgatherdps). llvmlite's builder
    only takes scalar indices; the ptrtoint/add/inttoptr spelling it does take becomes two gathers with
    64-bit addresses, ~8 % slower on the whole search."""

    def __init__(self, parent, ptr, idx):
        super().__init__(parent, ir.VectorType(ptr.type, idx.type.count), "getelementptr", [ptr, idx])

    def descr(self, buf):
        ptr, idx = self.operands
        buf.append(f"getelementptr {ptr.type.pointee}, {ptr.type} {ptr.get_reference()}, "
                   f"{idx.type} {idx.get_reference()}\n")


@intrinsic
def _gather_dot(typingctx, qd, f_terms, f_w, s, e):  # pragma: no cover - compiled
    """Dense query · forward row ``[s, e)``, 16 entries at a time: a vector load of the terms, a gather of
    their query weights (``llvm.masked.gather``), a vector load and conversion of the weights (float32,
    float16 bits or uint8 codes) and a multiply-add into 16 lanes; the last partial block is masked. LLVM
    emits AVX-512/AVX2 gathers where the CPU has them and scalar loads elsewhere."""
    if not (qd.dtype == types.float32 and f_terms.dtype in (types.uint16, types.int32)
            and f_w.dtype in (types.float32, types.uint16, types.uint8)):
        return None
    sig = types.float32(qd, f_terms, f_w, s, e)

    def codegen(context, builder, signature, args):
        n_l = _LANES
        qa, ta, wa = (context.make_array(t)(context, builder, v) for t, v in zip(signature.args[:3], args[:3], strict=True))
        i1, i32, i64, f32 = ir.IntType(1), ir.IntType(32), ir.IntType(64), ir.FloatType()
        vf, vi32, vm = ir.VectorType(f32, n_l), ir.VectorType(i32, n_l), ir.VectorType(i1, n_l)
        t_el = ir.IntType(16) if signature.args[1].dtype == types.uint16 else i32
        w_dt = signature.args[2].dtype
        w_el = {types.float32: f32, types.uint16: ir.IntType(16), types.uint8: ir.IntType(8)}[w_dt]
        vt, vw = ir.VectorType(t_el, n_l), ir.VectorType(w_el, n_l)
        t_al, w_al = t_el.width // 8, (32 if w_dt == types.float32 else w_el.width) // 8
        mod = builder.module

        def masked_load(vec, el):
            name = f"llvm.masked.load.v{n_l}{'f32' if el == f32 else f'i{el.width}'}.p0"
            return cgutils.get_or_insert_function(mod, ir.FunctionType(vec, [vec.as_pointer(), i32, vm, vec]), name)

        gather = cgutils.get_or_insert_function(
            mod, ir.FunctionType(vf, [ir.VectorType(f32.as_pointer(), n_l), i32, vm, vf]),
            f"llvm.masked.gather.v{n_l}f32.v{n_l}p0")
        load_t, load_w = masked_load(vt, t_el), masked_load(vw, w_el)
        zero = ir.Constant(vf, [0.0] * n_l)
        acc = cgutils.alloca_once_value(builder, zero)

        def block(j, mask):
            tp = builder.bitcast(builder.gep(ta.data, [j]), vt.as_pointer())
            wp = builder.bitcast(builder.gep(wa.data, [j]), vw.as_pointer())
            if mask is None:
                tv, wv = builder.load(tp, align=t_al), builder.load(wp, align=w_al)
                mask = ir.Constant(vm, [1] * n_l)
            else:
                tv = builder.call(load_t, [tp, i32(t_al), mask, ir.Constant(vt, [0] * n_l)])
                wv = builder.call(load_w, [wp, i32(w_al), mask, ir.Constant(vw, [0] * n_l)])
            idx = builder.zext(tv, vi32) if t_el != i32 else tv
            ptrs = _VectorGEP(builder.block, qa.data, idx)
            builder._insert(ptrs)
            g = builder.call(gather, [ptrs, i32(4), mask, zero])
            if w_dt == types.uint16:
                w = builder.fpext(builder.bitcast(wv, ir.VectorType(ir.HalfType(), n_l)), vf)
            elif w_dt == types.uint8:
                w = builder.uitofp(wv, vf)
            else:
                w = wv
            builder.store(builder.fadd(builder.load(acc), builder.fmul(g, w)), acc)

        s_, e_ = args[3], args[4]
        n = builder.sub(e_, s_)
        full = builder.udiv(n, i64(n_l))
        with cgutils.for_range(builder, full) as loop:
            block(builder.add(s_, builder.mul(loop.index, i64(n_l))), None)
        rest = builder.sub(n, builder.mul(full, i64(n_l)))
        with builder.if_then(builder.icmp_signed(">", rest, i64(0))):
            r = builder.insert_element(ir.Constant(vi32, ir.Undefined), builder.trunc(rest, i32), i32(0))
            r = builder.shuffle_vector(r, ir.Constant(vi32, ir.Undefined), ir.Constant(vi32, [0] * n_l))
            block(builder.add(s_, builder.mul(full, i64(n_l))),
                  builder.icmp_unsigned("<", ir.Constant(vi32, list(range(n_l))), r))
        v = builder.load(acc)
        tot = builder.extract_element(v, i32(0))
        for i in range(1, n_l):
            tot = builder.fadd(tot, builder.extract_element(v, i32(i)))
        return tot

    return sig, codegen


@nb.njit(nogil=True, cache=True, inline="always")
def _dot_row_gather(qd, f_terms, f_w, s, e):  # pragma: no cover - compiled
    return _gather_dot(qd, f_terms, f_w, s, e)


def _host_has_gather() -> bool:
    """AVX2 or AVX-512 on this CPU: the gathered dot product is then 15-25 % faster per search (measured on
    AMD EPYC Zen 4, SciFact and the 500k benchmark corpus); elsewhere LLVM would split the gather into
    scalar loads, and the scalar kernel with four accumulators is the better choice. (numba's on-disk cache
    is keyed by the CPU's name and features, so a cached kernel always matches this choice.)"""
    from llvmlite import binding

    feats = binding.get_host_cpu_features()
    return bool(feats.get("avx2", False) or feats.get("avx512f", False))


_dot_row = _dot_row_gather if _host_has_gather() else _dot_row_scalar


_AHEAD = 4  # documents fetched ahead of the one being scored
_QMASK = 7  # ring buffer of the documents waiting to be scored (size a power of 2 > _AHEAD)



@nb.njit(nogil=True, cache=True, inline="always")
def _prefetch_row(f_terms, f_w, s, e):  # pragma: no cover - compiled
    for j in range(s, e, 32):
        _prefetch(f_terms, j)
    for j in range(s, e, 64 // f_w.itemsize):
        _prefetch(f_w, j)


@nb.njit(nogil=True, cache=True, inline="always")
def _score_queued(qd, f_terms, f_w, f_scale, scaled, pend, pend_s, pend_e, i, h_scores, h_idx, size, k):  # pragma: no cover
    """Score the queued document in slot ``i`` (its row was prefetched when it was queued) into the heap."""
    e = pend[i]
    s = _dot_row(qd, f_terms, f_w, pend_s[i], pend_e[i])
    if scaled:
        s *= f_scale[e]
    return heap_push(h_scores, h_idx, size, k, s, e)


@nb.njit(nogil=True, cache=True)
def _approx_serial(q_indptr, q_terms, q_w, f_terms, f_w, f_scale, pr_docs, pr_pack, block_ptr, block_off, b_step,
                   s_list_ptr, s_terms, s_counts, s_ck, s_entries, allowed, use_allowed, qd, visited, state,
                   max_blocks, k, query_cut, heap_factor, first_sorted, global_order):  # pragma: no cover - compiled
    """Seismic search of a batch of queries. ``qd`` (zeros, one per term), ``visited`` (epoch marks, one per
    row) and ``state`` (the last epoch) are per-thread scratch reused across calls; qd is left zeroed."""
    nq = len(q_indptr) - 1
    out_idx = np.full((nq, k), -1, dtype=np.int64)
    out_scores = np.full((nq, k), -np.inf, dtype=np.float32)
    counts = np.zeros(nq, dtype=np.int64)
    dots = np.zeros(max(max_blocks, 1) * max(query_cut, 1), dtype=np.float32)  # every visited list's blocks
    gblk = np.empty(len(dots), dtype=np.int64)  # their global block ids
    longest_q = 1
    for qi in range(nq):
        longest_q = max(longest_q, q_indptr[qi + 1] - q_indptr[qi])
    m_off = np.empty(longest_q, dtype=np.int64)  # summary terms of a list matching the query
    m_cnt = np.empty(longest_q, dtype=np.int64)
    m_w = np.empty(longest_q, dtype=np.float32)
    h_scores = np.empty(k, dtype=np.float32)
    h_idx = np.empty(k, dtype=np.int64)
    hf = np.float32(heap_factor)
    scaled = len(f_scale) > 0  # uint8 codes: weight = code × f_scale[row]
    pend = np.empty(_QMASK + 1, dtype=np.int64)
    pend_s = np.empty(_QMASK + 1, dtype=np.int64)
    pend_e = np.empty(_QMASK + 1, dtype=np.int64)
    lbits = np.uint64(_LEN_BITS)
    lmask = np.uint64((1 << _LEN_BITS) - 1)
    for qi in range(nq):
        qs, qe = q_indptr[qi], q_indptr[qi + 1]
        if qe == qs:
            continue
        epoch = state[0] + 1
        if epoch > 255:  # uint8 marks (small enough to stay in cache): clear them every 255 queries
            visited[:] = 0
            epoch = 1
        state[0] = epoch
        for j in range(qs, qe):
            qd[q_terms[j]] = q_w[j]
        order = np.argsort(-q_w[qs:qe], kind="mergesort")
        size = 0
        head = 0
        tail = 0
        # 1. summary scores of the blocks of the query's query_cut largest terms' lists
        tot = 0
        first_n = 0
        for r in range(min(query_cut, qe - qs)):
            t = q_terms[qs + order[r]]
            b0 = block_ptr[t]
            nb_ = block_ptr[t + 1] - b0
            if nb_ == 0:
                continue
            if tot == 0:
                first_n = nb_
            bd = dots[tot : tot + nb_]
            bd[:] = 0.0
            # find the query's terms among the list's summary terms (galloping search, moving lower bound),
            # prefetch their entries, then add them up: the entries are cold, so their loads overlap
            lo = s_list_ptr[t]
            hi = s_list_ptr[t + 1]
            n_m = 0
            for j in range(qs, qe):
                u = q_terms[j]
                # the next summary term >= u: galloping search from the moving lower bound (probes at
                # lo+1, lo+2, lo+4, ... then a binary search inside the last step): the query's next term is
                # usually a few hundred positions on, so the probes stay on nearby cache lines instead of
                # jumping across the whole list as a plain binary search would
                a = lo
                if a < hi and s_terms[a] < u:
                    step = 1
                    while a + step < hi and s_terms[a + step] < u:
                        a += step
                        step <<= 1
                    b = min(a + step, hi)
                    a += 1
                    while a < b:
                        mid = (a + b) >> 1
                        if s_terms[mid] < u:
                            a = mid + 1
                        else:
                            b = mid
                lo = a
                if a == hi:
                    break
                if s_terms[a] != u:
                    continue
                x = s_ck[a // _CK]  # entry offset of summary term a: checkpoint + the counts since
                for i in range(a - a % _CK, a):
                    x += s_counts[i]
                c = 0
                while a < hi and s_terms[a] == u:  # a term with more than 255 entries spans rows
                    c += s_counts[a]
                    a += 1
                lo = a
                _prefetch(s_entries, x)
                m_off[n_m] = x
                m_cnt[n_m] = c
                m_w[n_m] = q_w[j]
                n_m += 1
            for i in range(n_m):
                w = m_w[i]
                for y in range(m_off[i], m_off[i] + m_cnt[i]):
                    e = s_entries[y]
                    bd[e >> 8] += w * np.float32(e & 255)
            for b in range(nb_):
                bd[b] *= b_step[b0 + b]
                gblk[tot + b] = b0 + b
            tot += nb_
        # 2. the visiting order: Seismic's (list by list, the first list's blocks best summary first), or
        # every block of every visited list best summary first (global_order) — then the k-th best score
        # rises fastest, and the first block whose summary falls below it ends the query
        if global_order:
            border = np.argsort(-dots[:tot], kind="mergesort")
        else:
            border = np.arange(tot)
            if first_sorted and first_n:
                border[:first_n] = np.argsort(-dots[:first_n], kind="mergesort")
        for bi in range(tot):
            b = border[bi]
            if size == k and dots[b] < hf * h_scores[0]:
                if global_order:
                    break
                continue
            p0, p1 = block_off[gblk[b]], block_off[gblk[b] + 1]
            for p in range(p0, p1):
                d = pr_docs[p]
                if visited[d] == epoch:
                    continue
                visited[d] = epoch
                if use_allowed and not allowed[d]:
                    continue
                # documents to score go through a short queue: the rows of the next ones are being
                # fetched (prefetch) while one is scored, across block and list boundaries
                pk = pr_pack[p]
                rs = np.int64(pk >> lbits)
                re = rs + np.int64(pk & lmask)
                _prefetch_row(f_terms, f_w, rs, re)
                pend[tail & _QMASK] = d
                pend_s[tail & _QMASK] = rs
                pend_e[tail & _QMASK] = re
                tail += 1
                if tail - head > _AHEAD:
                    size = _score_queued(qd, f_terms, f_w, f_scale, scaled, pend, pend_s, pend_e, head & _QMASK,
                                         h_scores, h_idx, size, k)
                    head += 1
        while head < tail:
            size = _score_queued(qd, f_terms, f_w, f_scale, scaled, pend, pend_s, pend_e, head & _QMASK,
                                 h_scores, h_idx, size, k)
            head += 1
        for j in range(qs, qe):
            qd[q_terms[j]] = 0.0
        heap_drain_sorted(h_scores, h_idx, size, out_scores[qi], out_idx[qi])
        counts[qi] = size
    return out_idx, out_scores, counts


