package io.ptune.prompt;

import io.ptune.InvalidConfigException;
import java.util.Objects;

/**
 * P-tuning (Liu et al. 2021), as PEFT's {@code PromptEncoderConfig} defines it: n virtual-token
 * embeddings {@code E (n, C)} reparameterised by a prompt encoder, whose output {@code (n, C)} is
 * placed before the input. Immutable; build it with {@link #builder()}.
 *
 * @param numVirtualTokens n (> 0)
 * @param encoderType MLP (PEFT's default) or bi-LSTM + MLP head
 * @param encoderHiddenSize the encoder width h; null means the model's hidden size, as PEFT sets
 *     it (to token_dim) when left unset
 * @param encoderNumLayers LSTM layers (>= 1, default 2); the MLP always has PEFT's fixed three
 *     linear layers and ignores this, as PEFT does
 * @param encoderDropout dropout between LSTM layers during training, in [0, 1) (default 0)
 * @param initialization how {@code E} starts (the encoder's input, not its output)
 * @param seed seeds E's random init and the encoder weights
 */
public record PTuningConfig(
        int numVirtualTokens,
        PromptEncoderType encoderType,
        Integer encoderHiddenSize,
        int encoderNumLayers,
        double encoderDropout,
        PromptInitSpec initialization,
        long seed) implements PromptMethodConfig {

    /** PEFT's default encoder_num_layers. */
    public static final int DEFAULT_ENCODER_NUM_LAYERS = 2;

    public PTuningConfig {
        Objects.requireNonNull(encoderType, "encoderType");
        Objects.requireNonNull(initialization, "initialization");
        if (numVirtualTokens <= 0) {
            throw new InvalidConfigException("numVirtualTokens", "must be > 0, got " + numVirtualTokens
                    + "; a prompt of length 0 does nothing (e.g. use 20)");
        }
        if (encoderHiddenSize != null && encoderHiddenSize <= 0) {
            throw new InvalidConfigException("encoderHiddenSize", "must be > 0, got " + encoderHiddenSize
                    + "; leave it unset for the model's hidden size");
        }
        if (encoderNumLayers < 1) {
            throw new InvalidConfigException("encoderNumLayers", "must be >= 1, got " + encoderNumLayers);
        }
        if (!(encoderDropout >= 0 && encoderDropout < 1)) {
            throw new InvalidConfigException("encoderDropout", "must lie in [0, 1), got " + encoderDropout);
        }
    }

    @Override
    public PromptMethod method() {
        return PromptMethod.P_TUNING;
    }

    /** The encoder width for a model of hidden size {@code tokenDim}. */
    public int resolvedEncoderHiddenSize(int tokenDim) {
        return encoderHiddenSize == null ? tokenDim : encoderHiddenSize;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Builder; {@link #numVirtualTokens(int)} is required, everything else has PEFT's default. */
    public static final class Builder extends InputPromptBuilder<Builder> {
        private PromptEncoderType encoderType = PromptEncoderType.MLP;
        private Integer encoderHiddenSize;
        private int encoderNumLayers = DEFAULT_ENCODER_NUM_LAYERS;
        private double encoderDropout = 0.0;

        private Builder() {}

        /** Default MLP. */
        public Builder encoderType(PromptEncoderType encoderType) {
            this.encoderType = encoderType;
            return this;
        }

        /** Default: the model's hidden size. */
        public Builder encoderHiddenSize(int encoderHiddenSize) {
            this.encoderHiddenSize = encoderHiddenSize;
            return this;
        }

        /** LSTM layers, default 2. */
        public Builder encoderNumLayers(int encoderNumLayers) {
            this.encoderNumLayers = encoderNumLayers;
            return this;
        }

        /** LSTM dropout, default 0. */
        public Builder encoderDropout(double encoderDropout) {
            this.encoderDropout = encoderDropout;
            return this;
        }

        /** @throws InvalidConfigException naming the field that is missing or out of range */
        public PTuningConfig build() {
            int n = requiredNumVirtualTokens();
            return new PTuningConfig(n, encoderType, encoderHiddenSize, encoderNumLayers, encoderDropout, initSpec(),
                    seed);
        }
    }
}
