package io.ptune.prompt;

/**
 * What prompt to train, for any method: prompt tuning, P-tuning, prefix tuning, composite and
 * dynamic prompts. Each implementation is an immutable record built with its own builder and
 * validated when built ({@link io.ptune.InvalidConfigException} naming the field).
 * {@link PromptModule#create} turns a config into initialised parameters in front of a model.
 */
public sealed interface PromptMethodConfig
        permits PromptTuningConfig, PTuningConfig, PrefixTuningConfig, CompositePromptConfig, DynamicPromptConfig {

    /** The method this config describes. */
    PromptMethod method();

    /**
     * n, the number of virtual tokens (> 0): input positions for input-level methods, prefix
     * positions per layer for prefix tuning, the sum of the blocks for a composite prompt.
     */
    int numVirtualTokens();

    /** Seeds random initialisation (prompt values and encoder / generator weights). */
    long seed();
}
