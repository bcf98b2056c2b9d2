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

    /** Without FROM_ADAPTER (the constructor of earlier versions). */
    public PromptTuningConfig(int numVirtualTokens, PromptInit init, String initText, List<String> labelWords,
            long seed) {
        this(numVirtualTokens, init, initText, labelWords, null, seed);
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
    public static final class Builder {
        private Integer numVirtualTokens;
        private PromptInit init = PromptInit.RANDOM;
        private String initText;
        private List<String> labelWords = List.of();
        private Path initAdapter;
        private long seed = 42;

        private Builder() {}

        /** Required: the number of virtual tokens, > 0. */
        public Builder numVirtualTokens(int numVirtualTokens) {
            this.numVirtualTokens = numVirtualTokens;
            return this;
        }

        /** Default {@link PromptInit#RANDOM}. */
        public Builder init(PromptInit init) {
            this.init = init;
            return this;
        }

        /** Shorthand for {@code init(TEXT)} with this text. */
        public Builder initText(String initText) {
            this.init = PromptInit.TEXT;
            this.initText = initText;
            return this;
        }

        /** Shorthand for {@code init(LABELS)} with these words, one per class. */
        public Builder labelWords(List<String> labelWords) {
            this.init = PromptInit.LABELS;
            this.labelWords = labelWords;
            return this;
        }

        /** Shorthand for {@code init(FROM_ADAPTER)}: warm start from the adapter saved in {@code dir}. */
        public Builder initFromAdapter(Path dir) {
            this.init = PromptInit.FROM_ADAPTER;
            this.initAdapter = dir;
            return this;
        }

        /** All init fields at once. */
        public Builder initialization(PromptInitSpec spec) {
            this.init = spec.init();
            this.initText = spec.initText();
            this.labelWords = spec.labelWords();
            this.initAdapter = spec.adapter();
            return this;
        }

        /** Default 42. */
        public Builder seed(long seed) {
            this.seed = seed;
            return this;
        }

        /** @throws InvalidConfigException naming the field that is missing or out of range */
        public PromptTuningConfig build() {
            if (numVirtualTokens == null) {
                throw new InvalidConfigException("numVirtualTokens",
                        "is required; set the number of soft tokens to train (e.g. 20)");
            }
            return new PromptTuningConfig(numVirtualTokens, init, initText, labelWords, initAdapter, seed);
        }
    }
}
