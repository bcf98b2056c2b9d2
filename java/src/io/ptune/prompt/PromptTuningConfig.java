package io.ptune.prompt;

import io.ptune.InvalidConfigException;
import java.util.List;
import java.util.Objects;

/**
 * What soft prompt to train: how many virtual tokens and how they start. Immutable; build it with
 * {@link #builder()}.
 *
 * @param numVirtualTokens n, the number of prompt vectors placed before the input
 * @param init how the prompt starts
 * @param initText the text for {@link PromptInit#TEXT}, else null
 * @param labelWords one entry per class for {@link PromptInit#LABELS} (each may be several
 *     words; its tokens are averaged), else empty
 * @param seed seeds RANDOM and SAMPLE_VOCAB initialisation
 */
public record PromptTuningConfig(
        int numVirtualTokens, PromptInit init, String initText, List<String> labelWords, long seed) {

    public PromptTuningConfig {
        Objects.requireNonNull(init, "init");
        labelWords = List.copyOf(labelWords == null ? List.of() : labelWords);
        if (numVirtualTokens <= 0) {
            throw new InvalidConfigException("numVirtualTokens", "must be > 0, got " + numVirtualTokens
                    + "; use the number of soft tokens to train (e.g. 20)");
        }
        if (init == PromptInit.TEXT && (initText == null || initText.isBlank())) {
            throw new InvalidConfigException("initText",
                    "is required when init is TEXT; give the text whose embeddings start the prompt");
        }
        if (init != PromptInit.TEXT && initText != null) {
            throw new InvalidConfigException("initText", "is only used with init TEXT, but init is "
                    + init + "; remove it or set init to TEXT");
        }
        if (init == PromptInit.LABELS) {
            if (labelWords.isEmpty()) {
                throw new InvalidConfigException("labelWords",
                        "is required when init is LABELS; give one label word per class");
            }
            for (int i = 0; i < labelWords.size(); i++) {
                if (labelWords.get(i) == null || labelWords.get(i).isBlank()) {
                    throw new InvalidConfigException("labelWords",
                            "entry " + i + " is blank; every class needs a label word");
                }
            }
        } else if (!labelWords.isEmpty()) {
            throw new InvalidConfigException("labelWords", "is only used with init LABELS, but init is "
                    + init + "; remove it or set init to LABELS");
        }
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
            return new PromptTuningConfig(numVirtualTokens, init, initText, labelWords, seed);
        }
    }
}
