package io.ptune.prompt;

import io.ptune.InvalidConfigException;
import java.util.Objects;

/**
 * A dynamic (input-conditioned) prompt: {@code P_x = E + g(m_x)}, where {@code m_x} is the mean
 * of the input's token embeddings over its attention mask and {@code g} is
 * {@code Linear(C, h), Tanh, Linear(h, n·C)}. g's last layer starts at zero, so training starts
 * from the static prompt E and learns how each input moves it. PEFT has no such method; adapters
 * carry {@code peft_type} {@code PTUNE_DYNAMIC_PROMPT}. Immutable; build it with
 * {@link #builder()}.
 *
 * @param numVirtualTokens n (> 0)
 * @param generatorHiddenSize the generator width h; null means the model's hidden size
 * @param initialization how E starts
 * @param seed seeds E's random init and the generator's first layer
 */
public record DynamicPromptConfig(
        int numVirtualTokens, Integer generatorHiddenSize, PromptInitSpec initialization, long seed)
        implements PromptMethodConfig {

    public DynamicPromptConfig {
        Objects.requireNonNull(initialization, "initialization");
        if (numVirtualTokens <= 0) {
            throw new InvalidConfigException("numVirtualTokens", "must be > 0, got " + numVirtualTokens
                    + "; a prompt of length 0 does nothing (e.g. use 20)");
        }
        if (generatorHiddenSize != null && generatorHiddenSize <= 0) {
            throw new InvalidConfigException("generatorHiddenSize", "must be > 0, got " + generatorHiddenSize
                    + "; leave it unset for the model's hidden size");
        }
    }

    @Override
    public PromptMethod method() {
        return PromptMethod.DYNAMIC;
    }

    /** The generator width for a model of hidden size {@code hiddenSize}. */
    public int resolvedGeneratorHiddenSize(int hiddenSize) {
        return generatorHiddenSize == null ? hiddenSize : generatorHiddenSize;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Builder; {@link #numVirtualTokens(int)} is required, everything else has a default. */
    public static final class Builder extends InputPromptBuilder<Builder> {
        private Integer generatorHiddenSize;

        private Builder() {}

        /** Default: the model's hidden size. */
        public Builder generatorHiddenSize(int generatorHiddenSize) {
            this.generatorHiddenSize = generatorHiddenSize;
            return this;
        }

        /** @throws InvalidConfigException naming the field that is missing or out of range */
        public DynamicPromptConfig build() {
            int n = requiredNumVirtualTokens();
            return new DynamicPromptConfig(n, generatorHiddenSize, initSpec(), seed);
        }
    }
}
