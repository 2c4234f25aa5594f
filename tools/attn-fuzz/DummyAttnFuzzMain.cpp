//===- DummyAttnFuzzMain.cpp - attn-fuzz without libFuzzer ------*- C++ -*-===//
//
// Where the build has no libFuzzer, attn-fuzz runs each file it is given
// through the fuzz target once: the regression inputs stay tests.
//
//===----------------------------------------------------------------------===//

#include "llvm/FuzzMutate/FuzzerCLI.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char *argv[]) {
  return llvm::runFuzzerOnInputs(argc, argv, LLVMFuzzerTestOneInput);
}
