//! The target-facing immediates of KIR ops: cache hints, parallel axes, shuffle modes, and the
//! kinds of the integer dot products and of the reserved `mma`.

mnemonics!(
    /// Cache policy of a load or store. On the GPU: `evict_first` = `ld.global.cs` (streaming,
    /// for read-once weights), `evict_last` = `ld.global.lu`/L2 evict-last, `no_l1` =
    /// `ld.global.cg`. On the CPU: `evict_first` = a non-temporal access, the rest are plain.
    CacheHint {
        /// No hint.
        Default => "default",
        /// Read once: don't keep in cache.
        EvictFirst => "evict_first",
        /// Keep as long as possible.
        EvictLast => "evict_last",
        /// Bypass L1 (cache in L2 only).
        NoL1 => "no_l1",
    }
);

mnemonics!(
    /// The parallel axes a kernel instance reads its position from (`axis <name>`). GPU:
    /// `grid.*` = `blockIdx.*`, `block.*` = `threadIdx.*`, `warp` = linear thread index / 32,
    /// `lane` = linear thread index % 32. CPU: `cpu.chunk` = the index of the chunk this call of
    /// the kernel function runs (the runtime spreads chunks over its thread pool). SIMD lanes are
    /// not an axis: they are the lanes of vector types.
    Axis {
        /// blockIdx.x
        GridX => "grid.x",
        /// blockIdx.y
        GridY => "grid.y",
        /// blockIdx.z
        GridZ => "grid.z",
        /// threadIdx.x
        BlockX => "block.x",
        /// threadIdx.y
        BlockY => "block.y",
        /// threadIdx.z
        BlockZ => "block.z",
        /// Warp index in the block.
        Warp => "warp",
        /// Lane index in the warp.
        Lane => "lane",
        /// CPU chunk index.
        CpuChunk => "cpu.chunk",
    }
);

mnemonics!(
    /// Warp shuffle modes (`shfl.<mode> value, operand`), over all 32 lanes of a warp, which must
    /// all be active. `xor`: from lane ^ m (`shfl.sync.bfly`); `down`/`up`: from lane ± d, own
    /// value when out of range; `idx`: from lane `operand`.
    ShflMode {
        /// Butterfly.
        Xor => "xor",
        /// From a higher lane.
        Down => "down",
        /// From a lower lane.
        Up => "up",
        /// From an indexed lane.
        Idx => "idx",
    }
);

mnemonics!(
    /// Widening pairwise multiply-adds (`madd.<kind>`), the CPU's integer dot products.
    Madd {
        /// `pmaddubsw`: unsigned i8 × signed i8, adjacent pairs summed with signed saturation to
        /// i16: `<2N x i8>, <2N x i8> → <N x i16>`.
        U8S8 => "u8s8",
        /// `pmaddwd`: i16 × i16, adjacent pairs summed (wrapping) to i32:
        /// `<2N x i16>, <2N x i16> → <N x i32>`.
        S16 => "s16",
    }
);

mnemonics!(
    /// `dp4a.<a><b> a, b, acc`: four byte products of packed `i32`s added to `acc` (PTX `dp4a`).
    Dp4a {
        /// signed × signed
        S8S8 => "s8s8",
        /// unsigned × signed
        U8S8 => "u8s8",
        /// signed × unsigned
        S8U8 => "s8u8",
        /// unsigned × unsigned
        U8U8 => "u8u8",
    }
);

mnemonics!(
    /// Tensor-core shapes for the reserved `mma` op (not yet supported anywhere).
    MmaShape {
        /// `mma.sync.m16n8k16`.
        M16N8K16 => "m16n8k16",
    }
);
