// REQUIRES: ptxas
// RUN: rm -rf %t && mkdir -p %t
// RUN: attn-opt %s --attn-write-bundle="dir=%t name=k toolkit=%cuda_toolkit" | FileCheck %s
// RUN: FileCheck %s --check-prefix=JSON < %t/k.json
// RUN: FileCheck %s --check-prefix=PTX < %t/k.ptx
// RUN: od -An -c -N4 %t/k.cubin | FileCheck %s --check-prefix=ELF

// The bundle writer serializes the attached target of gpu.module
// @attn_kernels to PTX and a cubin, and writes the module's `attn.kernels`
// launch descriptions in a .json file (dictionaries as objects, arrays as arrays,
// strings, integers, booleans and floats as themselves). The IR is left as
// it was.
// CHECK: gpu.module @attn_kernels
// JSON: "cubin": "k.cubin",
// JSON-NEXT: "format": "attn-bundle-v2",
// JSON-NEXT: "kernels": [
// JSON-NEXT: {
// JSON-NEXT: "flag": true,
// JSON-NEXT: "launches": [
// JSON-NEXT: {
// JSON-NEXT: "block": [
// JSON-NEXT: 32,
// JSON-NEXT: 1,
// JSON-NEXT: 1
// JSON-NEXT: ],
// JSON-NEXT: "grid": [
// JSON-NEXT: "ceildiv(Sq, 64)",
// JSON: "kernel": "noop",
// JSON-NEXT: "shared_memory_bytes": 0
// JSON: "ratio": 0.5
// JSON: "ptx": "k.ptx",
// JSON-NEXT: "target": "#nvvm.target<chip = \"sm_90a\">"
// PTX: .visible .entry noop()
// ELF: 177 E L F
module attributes {gpu.container_module, attn.kernels = [{flag = true, launches = [{block = [32, 1, 1], grid = ["ceildiv(Sq, 64)", "Hq", "B"], kernel = "noop", shared_memory_bytes = 0 : i64}], ratio = 5.000000e-01 : f64}]} {
  gpu.module @attn_kernels [#nvvm.target<chip = "sm_90a">] {
    llvm.func @noop() attributes {gpu.kernel, nvvm.kernel} {
      llvm.return
    }
  }
}
