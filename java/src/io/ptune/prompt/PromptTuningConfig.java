package io.ptune.prompt;

import io.ptune.InvalidConfigException;
import java.nio.file.Path;
import java.util.List;
import java.util.Objects;

/**
 * Prompt tuning (Lester et al. 2021): how many virtual tokens and how they start. Immutable;
 * build it with {@link #builder()}.
 *
 * @param numVirtualTokens n, the number of prompt vectors placed before the input
 * @param init how the prompt starts
 * @param initText the text for {@link PromptInit#TEXT}, else null
 * @param labelWords one entry per class for {@link PromptInit#LABELS} (each may be several
 *     words; its tokens are averaged), else empty
 * @param initAdapter the adapter directory for {@link PromptInit#FROM_ADAPTER}, else null
 * @param seed seeds RANDOM and SAMPLE_VOCAB initialisation
 */
public record PromptTuningConfig(
        int numVirtualTokens, PromptInit init, String initText, List<String> labelWords, Path initAdapter,
        long seed) implements PromptMethodConfig {

    public PromptTuningConfig {
        Objects.requireNonNull(init, "init");
        labelWords = List.copyOf(labelWords == null ? List.of() : labelWords);
        if (numVirtualTokens <= 0) {
            throw new InvalidConfigException("numVirtualTokens", "must be > 0, got " + numVirtualTokens
                    + "; use the number of soft tokens to train (e.g. 20)");
        }
        new PromptInitSpec(init, initText, labelWords, initAdapter); // validates the init fields
    }

    @Override
    public PromptMethod method() {
        return PromptMethod.PROMPT_TUNING;
    }

    /** The init fields as one value. */
    public PromptInitSpec initialization() {
        return new PromptInitSpec(init, initText, labelWords, initAdapter);
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Builder; {@link #numVirtualTokens(int)} is required, everything else has a default. */
    public static final class Builder extends InputPromptBuilder<Builder> {
        private Builder() {}

        /** @throws InvalidConfigException naming the field that is missing or out of range */
        public PromptTuningConfig build() {
            int n = requiredNumVirtualTokens();
            PromptInitSpec init = initSpec();
            return new PromptTuningConfig(n, init.init(), init.initText(), init.labelWords(), init.adapter(), seed);
        }
    }
}
