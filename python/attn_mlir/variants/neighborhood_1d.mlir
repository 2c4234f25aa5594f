// neighborhood_1d: dilated 1-D neighborhood attention (NATTEN). Positions
// fall into 2 interleaved groups (i mod 2); within its group a query sees
// the 7 members nearest to it, the window shifted inward at the ends so that
// every query sees exactly 7 keys.
//
//   visible(i, j) = i mod 2 == j mod 2  and  start(i) <= j div 2 < start(i) + 7
//   start(i)      = clamp(i div 2 - 3, 0, L_g - 7),  L_g the group's size
//   O_i = softmax over the visible keys, applied to v
//
// Hassani et al., "Neighborhood Attention Transformer", CVPR 2023
// (arXiv:2204.07143); Hassani and Shi, "Dilated Neighborhood Attention
// Transformer", 2022 (arXiv:2209.15001). Needs Sq == Sk >= 14 (kernel times
// dilation).
attn.variant @neighborhood_1d mask = [#attn.neighborhood_1d<kernel = 7, dilation = 2>]
    normalize<softmax>
