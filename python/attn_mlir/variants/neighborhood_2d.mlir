// neighborhood_2d: dilated 2-D neighborhood attention over a 16 x 16 grid of
// tokens in row-major order (a 256 x 256 image in 16 x 16 patches). Query
// (r, c) sees key (r', c') iff r' is in the 1-D dilated neighborhood of r
// (kernel 7, dilation 2, over the 16 rows) and c' in that of c (over the 16
// columns): 7 x 7 = 49 keys per query.
//
//   visible(i, j) = nat(i div 16, j div 16, 16, 7, 2) and
//                   nat(i mod 16, j mod 16, 16, 7, 2)
//   O_i = softmax over the visible keys, applied to v
//
// (nat: see neighborhood_1d.mlir and docs/semantics.md.)
// Hassani et al., "Neighborhood Attention Transformer", CVPR 2023
// (arXiv:2204.07143); Hassani and Shi, "Dilated Neighborhood Attention
// Transformer", 2022 (arXiv:2209.15001). Needs Sq == Sk == 256.
attn.variant @neighborhood_2d
    mask = [#attn.neighborhood_2d<height = 16, width = 16, kernel_h = 7,
                                  kernel_w = 7, dilation_h = 2, dilation_w = 2>]
    normalize<softmax>
