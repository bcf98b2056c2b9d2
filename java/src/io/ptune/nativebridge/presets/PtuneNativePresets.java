package io.ptune.nativebridge.presets;

import org.bytedeco.javacpp.annotation.Platform;
import org.bytedeco.javacpp.annotation.Properties;
import org.bytedeco.javacpp.tools.Info;
import org.bytedeco.javacpp.tools.InfoMap;
import org.bytedeco.javacpp.tools.InfoMapper;

/**
 * JavaCPP presets for the native façade {@code native/include/ptune/ptune.h}. The Maven
 * build compiles this class first, parses the header into {@code io.ptune.nativebridge.PtuneNative},
 * then compiles the JNI library that links {@code libptune.so}.
 */
@Properties(
    target = "io.ptune.nativebridge.PtuneNative",
    value = @Platform(compiler = "cpp17", include = "ptune/ptune.h", link = "ptune"))
public class PtuneNativePresets implements InfoMapper {
  @Override
  public void map(InfoMap infoMap) {
    // The pimpl members are implementation details, not part of the binding.
    infoMap.put(new Info("ptune::Model::Impl", "ptune::PromptTrainer::Impl", "ptune::MixedBatch::Impl",
        "ptune::DecodeSession::Impl").skip());
    infoMap.put(new Info("std::unique_ptr<Impl>", "std::shared_ptr<Impl>").skip());
  }
}
