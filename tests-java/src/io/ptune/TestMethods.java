package io.ptune;

import io.ptune.prompt.CompositePromptConfig;
import io.ptune.prompt.DynamicPromptConfig;
import io.ptune.prompt.PTuningConfig;
import io.ptune.prompt.PrefixTuningConfig;
import io.ptune.prompt.PromptBlock;
import io.ptune.prompt.PromptEncoderType;
import io.ptune.prompt.PromptInitSpec;
import io.ptune.prompt.PromptMethodConfig;
import io.ptune.prompt.PromptTuningConfig;
import java.util.LinkedHashMap;
import java.util.Map;

/** One small config per prompt method (and encoder variant), for tests on stories260K. */
public final class TestMethods {
    private TestMethods() {}

    public static Map<String, PromptMethodConfig> all() {
        Map<String, PromptMethodConfig> configs = new LinkedHashMap<>();
        configs.put("prompt-tuning", PromptTuningConfig.builder().numVirtualTokens(4).initText("Once upon a time")
                .build());
        configs.put("p-tuning-mlp", PTuningConfig.builder().numVirtualTokens(4).encoderHiddenSize(32).seed(3).build());
        configs.put("p-tuning-lstm", PTuningConfig.builder().numVirtualTokens(4).encoderType(PromptEncoderType.LSTM)
                .encoderHiddenSize(16).seed(4).build());
        configs.put("prefix", PrefixTuningConfig.builder().numVirtualTokens(4).seed(5).build());
        configs.put("prefix-projection", PrefixTuningConfig.builder().numVirtualTokens(4).prefixProjection(true)
                .encoderHiddenSize(24).seed(6).build());
        configs.put("composite", CompositePromptConfig.builder()
                .addBlock("base", 3, PromptInitSpec.text("Once upon a time"))
                .addBlock(PromptBlock.of("task", 2, PromptInitSpec.sampleVocab()).withLearningRate(0.05))
                .seed(7).build());
        configs.put("dynamic", DynamicPromptConfig.builder().numVirtualTokens(4).generatorHiddenSize(16)
                .initText("Once upon a time").seed(8).build());
        return configs;
    }

    public static PromptMethodConfig get(String name) {
        PromptMethodConfig config = all().get(name);
        if (config == null) {
            throw new IllegalArgumentException("no test config named " + name);
        }
        return config;
    }
}
