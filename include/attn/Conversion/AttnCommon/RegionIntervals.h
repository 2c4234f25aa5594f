//===- RegionIntervals.h - a mask region's verdict on a tile ----*- C++ -*-===//
//
// A mask region (b, h, i, j, captures...) -> i1 decides one (query, key)
// pair. Over a tile of queries [i0, i1) and keys [j0, j1) the lowerings want
// to know whether it is true for every pair (the tile needs no per-element
// mask) or for none (the tile can be skipped). This emits, at run time, an
// abstract evaluation of the region over intervals: each integer value of
// the region gets inclusive bounds [lo, hi] (index values) and a validity
// bit, each i1 value the two facts "true for every pair" and "false for
// every pair". Integer ops on i32 and narrower are valid only while their
// bounds fit the type (no wrap-around), unsigned ops only on non-negative
// bounds; an op the analysis does not know makes its result unknown, which
// yields neither fact. The verdict is sound: it never claims a fact that
// some pair of the tile contradicts.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNCOMMON_REGIONINTERVALS_H
#define ATTN_CONVERSION_ATTNCOMMON_REGIONINTERVALS_H

#include "attn/Conversion/AttnCommon/AttnCodegen.h"

namespace mlir::attn {

/// Reads capture `index` of the region at `indices` (index values); null
/// where the lowering cannot read captures this way.
using CaptureReader =
    std::function<Value(unsigned index, ValueRange indices)>;

/// The verdict of the mask region `region` (block arguments b, h, i, j,
/// then the captures) over queries [i0, i1) and keys [j0, j1), both
/// non-empty, for batch `b` and head `h` (null: any). A capture read whose
/// indices depend on b, h and constants only is read once by `read` (when
/// given); any other read is unknown.
TileVerdict emitRegionTileVerdict(ScalarEmitter &e, Region &region, Value b,
                                  Value h, Value i0, Value i1, Value j0,
                                  Value j1, const CaptureReader &read);

} // namespace mlir::attn

#endif // ATTN_CONVERSION_ATTNCOMMON_REGIONINTERVALS_H
