//===- attn-run.cpp - run attn functions on the CPU JIT ---------*- C++ -*-===//
//
// attn-run FILE.mlir --entry=NAME [--lowering=flash|loops]
//          [--input=a.npy,b.npy,...] [--output=o.npy,lse.npy,...] [--seed=N]
//          [--memory-limit=MiB]
//
// Lowers FILE through attn-to-cpu, JIT-compiles it with MLIR's
// ExecutionEngine and calls NAME. Arguments come from .npy files, or are
// seeded random numbers when --input is absent (normal(0, 1) floats; for
// integer arguments, segment ids in [0, 4) sorted along the last axis).
// Results go to .npy files (--output), or a summary is printed. Arguments and
// results that take more than --memory-limit MiB together (8192 by default)
// are refused before anything is allocated.
//
// dtypes: f32 <-> '<f4', f16 <-> '<f2', i32 <-> '<i4', i64 <-> '<i8'; numpy
// has no bfloat16, so bf16 arguments are read from '<f4' files (rounded to
// nearest even) and bf16 results written as '<f4' (exact).
//
//===----------------------------------------------------------------------===//

#include "attn/InitAttn.h"
#include "attn/Pipelines/Pipelines.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ADT/APFloat.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include "llvm/Support/ScopedPrinter.h"

#include <cmath>
#include <cstring>
#include <random>

using namespace mlir;
namespace cl = llvm::cl;

static cl::opt<std::string> inputFile(cl::Positional,
                                      cl::desc("<input .mlir file>"),
                                      cl::Required);
static cl::opt<std::string> entry("entry", cl::desc("Function to run"),
                                  cl::Required);
static cl::opt<std::string>
    lowering("lowering", cl::desc("attn lowering: 'flash' or 'loops'"),
             cl::init("flash"));
static cl::opt<int64_t> qTile("q-tile", cl::desc("flash query tile"),
                              cl::init(16));
static cl::opt<int64_t> kvTile("kv-tile", cl::desc("flash KV tile"),
                               cl::init(32));
static cl::list<std::string> inputs("input",
                                    cl::desc("Argument .npy files, in order"),
                                    cl::CommaSeparated);
static cl::list<std::string> outputs("output",
                                     cl::desc("Result .npy files, in order"),
                                     cl::CommaSeparated);
static cl::opt<uint64_t> seed("seed", cl::desc("Seed of random arguments"),
                              cl::init(0));
static cl::opt<uint64_t> memoryLimit(
    "memory-limit",
    cl::desc("Refuse to run when the arguments and results together take "
             "more than this many MiB (0: no limit)"),
    cl::init(8192));

namespace {

/// A dense row-major buffer in the element type of the signature.
struct Buffer {
  RankedTensorType type;
  std::vector<char> bytes;
  std::vector<int64_t> descriptor; ///< An MLIR strided memref descriptor.
  void *descriptorPtr = nullptr;

  int64_t numElements() const { return type.getNumElements(); }
  unsigned elementBytes() const {
    return type.getElementType().getIntOrFloatBitWidth() / 8;
  }
  void allocate() {
    bytes.assign(numElements() * elementBytes() + 64, 0);
  }
  char *data() {
    // 64-byte aligned start inside `bytes`.
    auto addr = reinterpret_cast<uintptr_t>(bytes.data());
    return bytes.data() + ((64 - addr % 64) % 64);
  }
  void makeDescriptor() {
    int64_t rank = type.getRank();
    descriptor.assign(3 + 2 * rank, 0);
    auto ptr = reinterpret_cast<int64_t>(data());
    descriptor[0] = ptr;
    descriptor[1] = ptr;
    descriptor[2] = 0;
    int64_t stride = 1;
    for (int64_t d = rank - 1; d >= 0; --d) {
      descriptor[3 + d] = type.getDimSize(d);
      descriptor[3 + rank + d] = stride;
      stride *= type.getDimSize(d);
    }
    descriptorPtr = descriptor.data();
  }
};

std::string npyDescr(Type t) {
  if (t.isF32() || t.isBF16())
    return "<f4";
  if (t.isF16())
    return "<f2";
  if (t.isInteger(32))
    return "<i4";
  if (t.isInteger(64))
    return "<i8";
  return "";
}

LogicalResult fail(const Twine &msg) {
  llvm::WithColor::error(llvm::errs(), "attn-run") << msg << "\n";
  return failure();
}

uint16_t floatToBF16(float f) {
  llvm::APFloat x(f);
  bool lost;
  x.convert(llvm::APFloat::BFloat(), llvm::APFloat::rmNearestTiesToEven,
            &lost);
  return static_cast<uint16_t>(x.bitcastToAPInt().getZExtValue());
}

float bf16ToFloat(uint16_t bits) {
  uint32_t w = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &w, 4);
  return f;
}

float halfToFloat(uint16_t bits) {
  llvm::APFloat x(llvm::APFloat::IEEEhalf(), llvm::APInt(16, bits));
  bool lost;
  x.convert(llvm::APFloat::IEEEsingle(), llvm::APFloat::rmNearestTiesToEven,
            &lost);
  return x.convertToFloat();
}

uint16_t floatToHalf(float f) {
  llvm::APFloat x(f);
  bool lost;
  x.convert(llvm::APFloat::IEEEhalf(), llvm::APFloat::rmNearestTiesToEven,
            &lost);
  return static_cast<uint16_t>(x.bitcastToAPInt().getZExtValue());
}

/// Reads a .npy file into `buf`, checking dtype and shape against its type.
LogicalResult readNpy(StringRef path, Buffer &buf, unsigned argIndex) {
  auto file = llvm::MemoryBuffer::getFile(path);
  if (!file)
    return fail("cannot read '" + path + "': " + file.getError().message());
  StringRef content = (*file)->getBuffer();
  if (content.size() < 10 || !content.starts_with("\x93NUMPY"))
    return fail("'" + path + "' is not a .npy file (bad magic)");
  uint8_t major = content[6];
  size_t headerLen, headerStart;
  if (major == 1) {
    headerLen = uint8_t(content[8]) | (uint8_t(content[9]) << 8);
    headerStart = 10;
  } else if (major == 2 || major == 3) {
    if (content.size() < 12)
      return fail("'" + path + "' is truncated");
    headerLen = uint32_t(uint8_t(content[8])) |
                (uint32_t(uint8_t(content[9])) << 8) |
                (uint32_t(uint8_t(content[10])) << 16) |
                (uint32_t(uint8_t(content[11])) << 24);
    headerStart = 12;
  } else {
    return fail("'" + path + "' has unsupported .npy version " +
                Twine(int(major)));
  }
  if (content.size() < headerStart + headerLen)
    return fail("'" + path + "' is truncated (header)");
  StringRef header = content.substr(headerStart, headerLen);
  auto field = [&](StringRef key) -> std::optional<StringRef> {
    size_t at = header.find(("'" + key + "':").str());
    if (at == StringRef::npos)
      return std::nullopt;
    return header.drop_front(at + key.size() + 3).ltrim();
  };
  std::optional<StringRef> descr = field("descr");
  std::optional<StringRef> order = field("fortran_order");
  std::optional<StringRef> shape = field("shape");
  if (!descr || !order || !shape || !descr->starts_with("'") ||
      !shape->starts_with("("))
    return fail("'" + path + "' has a malformed .npy header");
  StringRef dtype = descr->drop_front().take_until([](char c) {
    return c == '\'';
  });
  if (order->starts_with("True"))
    return fail("'" + path + "' is in Fortran order; save it C-contiguous");
  SmallVector<int64_t> dims;
  StringRef dimText = shape->drop_front().take_until([](char c) {
    return c == ')';
  });
  SmallVector<StringRef> parts;
  dimText.split(parts, ',', -1, /*KeepEmpty=*/false);
  for (StringRef p : parts) {
    p = p.trim();
    if (p.empty())
      continue;
    int64_t d;
    if (p.getAsInteger(10, d))
      return fail("'" + path + "' has a malformed shape '" + dimText + "'");
    dims.push_back(d);
  }
  Type elt = buf.type.getElementType();
  std::string want = npyDescr(elt);
  std::string gotDtype = dtype.str();
  if (gotDtype == "|i1" || gotDtype == "|b1" || gotDtype != want)
    return fail("argument #" + Twine(argIndex) + " ('" + path +
                "'): dtype '" + gotDtype + "' does not match " +
                llvm::to_string(buf.type) + " (expected '" + want + "')");
  if (ArrayRef<int64_t>(dims) != buf.type.getShape()) {
    std::string got;
    llvm::raw_string_ostream os(got);
    os << "(";
    llvm::interleaveComma(dims, os);
    os << ")";
    return fail("argument #" + Twine(argIndex) + " ('" + path +
                "'): shape " + got + " does not match " +
                llvm::to_string(buf.type));
  }
  size_t dataStart = headerStart + headerLen;
  size_t fileElemBytes = elt.isBF16() ? 4 : buf.elementBytes();
  size_t need = buf.numElements() * fileElemBytes;
  if (content.size() - dataStart < need)
    return fail("'" + path + "' is truncated (data)");
  buf.allocate();
  const char *src = content.data() + dataStart;
  if (elt.isBF16()) {
    auto *dst = reinterpret_cast<uint16_t *>(buf.data());
    for (int64_t n = 0; n < buf.numElements(); ++n) {
      float f;
      std::memcpy(&f, src + 4 * n, 4);
      dst[n] = floatToBF16(f);
    }
  } else {
    std::memcpy(buf.data(), src, need);
  }
  return success();
}

LogicalResult writeNpy(StringRef path, Buffer &buf) {
  Type elt = buf.type.getElementType();
  std::string header = "{'descr': '" + npyDescr(elt) +
                       "', 'fortran_order': False, 'shape': (";
  for (int64_t d : buf.type.getShape())
    header += std::to_string(d) + ", ";
  header += "), }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += "\n";
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
  if (ec)
    return fail("cannot write '" + path + "': " + ec.message());
  os << "\x93NUMPY" << char(1) << char(0) << char(header.size() & 0xff)
     << char(header.size() >> 8) << header;
  if (elt.isBF16()) {
    auto *src = reinterpret_cast<uint16_t *>(buf.data());
    for (int64_t n = 0; n < buf.numElements(); ++n) {
      float f = bf16ToFloat(src[n]);
      os.write(reinterpret_cast<const char *>(&f), 4);
    }
  } else {
    os.write(buf.data(), buf.numElements() * buf.elementBytes());
  }
  return success();
}

void fillRandom(Buffer &buf, uint64_t argSeed) {
  buf.allocate();
  std::mt19937_64 rng(argSeed);
  Type elt = buf.type.getElementType();
  int64_t n = buf.numElements();
  if (isa<IntegerType>(elt)) {
    std::uniform_int_distribution<int64_t> dist(0, 3);
    int64_t last = buf.type.getRank() ? buf.type.getShape().back() : 1;
    std::vector<int64_t> values(n);
    for (auto &v : values)
      v = dist(rng);
    for (int64_t row = 0; row + last <= n && last > 0; row += last)
      std::sort(values.begin() + row, values.begin() + row + last);
    for (int64_t k = 0; k < n; ++k) {
      if (elt.isInteger(32))
        reinterpret_cast<int32_t *>(buf.data())[k] = int32_t(values[k]);
      else
        reinterpret_cast<int64_t *>(buf.data())[k] = values[k];
    }
    return;
  }
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (int64_t k = 0; k < n; ++k) {
    float f = dist(rng);
    if (elt.isF32())
      reinterpret_cast<float *>(buf.data())[k] = f;
    else if (elt.isF16())
      reinterpret_cast<uint16_t *>(buf.data())[k] = floatToHalf(f);
    else
      reinterpret_cast<uint16_t *>(buf.data())[k] = floatToBF16(f);
  }
}

double elementAsDouble(Buffer &buf, int64_t k) {
  Type elt = buf.type.getElementType();
  if (elt.isF32())
    return reinterpret_cast<float *>(buf.data())[k];
  if (elt.isF16())
    return halfToFloat(reinterpret_cast<uint16_t *>(buf.data())[k]);
  if (elt.isBF16())
    return bf16ToFloat(reinterpret_cast<uint16_t *>(buf.data())[k]);
  if (elt.isInteger(32))
    return reinterpret_cast<int32_t *>(buf.data())[k];
  return double(reinterpret_cast<int64_t *>(buf.data())[k]);
}

/// The bytes of a dense buffer of `type`, or nullopt past INT64_MAX.
std::optional<int64_t> bufferBytes(RankedTensorType type) {
  int64_t bytes = type.getElementType().getIntOrFloatBitWidth() / 8;
  for (int64_t d : type.getShape())
    if (llvm::MulOverflow(bytes, d, bytes))
      return std::nullopt;
  return bytes;
}

std::string formatMiB(int64_t bytes) {
  return llvm::formatv("{0:F1} MiB", double(bytes) / (1 << 20)).str();
}

/// Refuses, before anything is allocated, arguments and results that take
/// more than --memory-limit together (a huge declared shape would otherwise
/// end the process in "LLVM ERROR: out of memory").
LogicalResult checkMemory(ArrayRef<Buffer> args, ArrayRef<Buffer> results) {
  int64_t total = 0;
  const Buffer *largest = nullptr;
  int64_t largestBytes = 0;
  for (ArrayRef<Buffer> group : {args, results}) {
    for (const Buffer &buf : group) {
      std::optional<int64_t> bytes = bufferBytes(buf.type);
      if (!bytes || llvm::AddOverflow(total, *bytes, total))
        return fail("@" + entry + " takes or returns " +
                    llvm::to_string(buf.type) +
                    ", more bytes than fit in 64 bits");
      if (*bytes >= largestBytes) {
        largest = &buf;
        largestBytes = *bytes;
      }
    }
  }
  uint64_t limit = memoryLimit;
  // A limit past 2^43 MiB is no limit: no total exceeds it.
  if (limit != 0 && limit < (uint64_t(1) << 43) &&
      uint64_t(total) > (limit << 20))
    return fail("@" + entry + " needs " + formatMiB(total) +
                " for its arguments and results (the largest, " +
                llvm::to_string(largest->type) + ", " +
                formatMiB(largestBytes) + "), more than --memory-limit=" +
                Twine(limit) + " MiB; raise the limit (0: none) or use "
                "smaller shapes");
  return success();
}

LogicalResult checkType(Type t, StringRef what, unsigned index) {
  auto rt = dyn_cast<RankedTensorType>(t);
  if (!rt || !rt.hasStaticShape() || npyDescr(rt.getElementType()).empty())
    return fail(what + " #" + Twine(index) + " has type " +
                llvm::to_string(t) +
                "; attn-run takes statically shaped tensors of f32, f16, "
                "bf16, i32 or i64");
  return success();
}

LogicalResult run(MLIRContext &context) {
  std::string errorMessage;
  auto file = openInputFile(inputFile, &errorMessage);
  if (!file)
    return fail(errorMessage);
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr,
                                                           &context);
  if (!module)
    return fail("cannot parse '" + inputFile + "'");

  auto func = module->lookupSymbol<func::FuncOp>(entry);
  if (!func)
    return fail("no function '@" + entry + "' in '" + inputFile + "'");
  FunctionType fnType = func.getFunctionType();
  SmallVector<Buffer> args, results;
  for (auto [i, t] : llvm::enumerate(fnType.getInputs())) {
    if (failed(checkType(t, "argument", i)))
      return failure();
    args.push_back(Buffer{cast<RankedTensorType>(t), {}, {}, nullptr});
  }
  for (auto [i, t] : llvm::enumerate(fnType.getResults())) {
    if (failed(checkType(t, "result", i)))
      return failure();
    results.push_back(Buffer{cast<RankedTensorType>(t), {}, {}, nullptr});
  }
  if (!inputs.empty() && inputs.size() != args.size())
    return fail("@" + entry + " takes " + Twine(args.size()) +
                " arguments but --input names " + Twine(inputs.size()) +
                " files");
  if (!outputs.empty() && outputs.size() != results.size())
    return fail("@" + entry + " returns " + Twine(results.size()) +
                " results but --output names " + Twine(outputs.size()) +
                " files");
  if (failed(checkMemory(args, results)))
    return failure();
  for (auto [i, buf] : llvm::enumerate(args)) {
    if (!inputs.empty()) {
      if (failed(readNpy(inputs[i], buf, i)))
        return failure();
    } else {
      fillRandom(buf, seed * 1000003ULL + i);
    }
    buf.makeDescriptor();
  }
  for (Buffer &buf : results) {
    buf.allocate();
    buf.makeDescriptor();
  }

  func->setAttr("llvm.emit_c_interface", UnitAttr::get(&context));
  PassManager pm(&context);
  if (lowering != "flash" && lowering != "loops")
    return fail("--lowering must be 'flash' or 'loops', got '" + lowering +
                "'");
  attn::AttnToCPUOptions options;
  options.lowering =
      lowering == "loops" ? attn::CPULowering::Loops : attn::CPULowering::Flash;
  options.qTile = qTile;
  options.kvTile = kvTile;
  attn::buildAttnToCPUPipeline(pm, options);
  if (failed(pm.run(*module)))
    return fail("lowering '" + inputFile + "' failed");

  // `transformer` is a function_ref: the function it refers to must outlive
  // ExecutionEngine::create (a temporary here was a stack-use-after-scope,
  // found by AddressSanitizer).
  std::function<llvm::Error(llvm::Module *)> optimize =
      makeOptimizingTransformer(/*optLevel=*/2, /*sizeLevel=*/0,
                                /*targetMachine=*/nullptr);
  ExecutionEngineOptions engineOptions;
  engineOptions.transformer = optimize;
  SmallVector<StringRef> libs = {ATTN_C_RUNNER_UTILS};
  engineOptions.sharedLibPaths = libs;
  auto engine = ExecutionEngine::create(*module, engineOptions);
  if (!engine)
    return fail("JIT compilation failed: " +
                llvm::toString(engine.takeError()));

  SmallVector<void *> packed;
  for (Buffer &buf : args)
    packed.push_back(&buf.descriptorPtr);
  for (Buffer &buf : results)
    packed.push_back(&buf.descriptorPtr);
  if (llvm::Error err =
          (*engine)->invokePacked("_mlir_ciface_" + entry, packed))
    return fail("invoking @" + entry + " failed: " +
                llvm::toString(std::move(err)));

  for (auto [i, buf] : llvm::enumerate(results)) {
    if (!outputs.empty()) {
      if (failed(writeNpy(outputs[i], buf)))
        return failure();
      continue;
    }
    double sum = 0, sumAbs = 0;
    int64_t nonFinite = 0;
    for (int64_t k = 0; k < buf.numElements(); ++k) {
      double x = elementAsDouble(buf, k);
      if (!std::isfinite(x)) {
        ++nonFinite;
        continue;
      }
      sum += x;
      sumAbs += std::fabs(x);
    }
    llvm::outs() << "result #" << i << ": " << buf.type << " sum = " << sum
                 << " mean|x| = " << sumAbs / std::max<int64_t>(1, buf.numElements())
                 << " non-finite = " << nonFinite << "\n";
  }
  return success();
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM y(argc, argv);
  cl::ParseCommandLineOptions(argc, argv,
                              "attn-run: run attn functions on the CPU JIT\n");
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  DialectRegistry registry;
  attn::registerAllAttnDialects(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();
  return failed(run(context)) ? 1 : 0;
}
