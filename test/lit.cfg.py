# -*- Python -*-
import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "ATTN"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["CMakeLists.txt", "README.md", "lit.cfg.py", "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.attn_obj_root, "test")

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%attn_src_root", config.attn_src_root))
config.substitutions.append(("%attn_obj_root", config.attn_obj_root))
config.environment["FILECHECK_OPTS"] = "--enable-var-scope"
config.substitutions.append(("%cuda_toolkit", config.cuda_toolkit_path))
config.substitutions.append(
    ("%ptxas", os.path.join(config.cuda_toolkit_path, "bin", "ptxas")))
# Tests that assemble PTX (ptxas, or --attn-to-nvvm writing a cubin) need
# the CUDA toolkit: `REQUIRES: ptxas` reports them unsupported without it.
if os.access(os.path.join(config.cuda_toolkit_path, "bin", "ptxas"), os.X_OK):
    config.available_features.add("ptxas")
else:
    lit_config.note("no ptxas under " + config.cuda_toolkit_path +
                    " (ATTN_CUDA_TOOLKIT_PATH): tests that assemble PTX are "
                    "unsupported")

llvm_config.with_system_env_vars_to_pass = ["HOME"]
llvm_config.use_default_substitutions()

tool_dirs = [config.attn_tools_dir, config.llvm_tools_dir]
tools = ["attn-opt", "attn-run", "attn-fuzz"]
llvm_config.add_tool_substitutions(tools, tool_dirs)
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
