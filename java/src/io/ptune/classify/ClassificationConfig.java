package io.ptune.classify;

import io.ptune.InvalidConfigException;
import java.util.Objects;

/**
 * How a classifier reads the frozen model (a task, kept apart from the prompt method in front of
 * the model). Build it with {@link #builder()}; {@code build()} rejects settings that do not go
 * together, naming the field.
 *
 * @param head the kind of head
 * @param pooling what the linear head reads, or null for the model's default (CLS for encoders,
 *     LAST for decoders)
 * @param template the PET pattern of the verbalizer heads (null for the linear head)
 * @param verbalizer the label words of the verbalizer heads: required for VERBALIZER; for
 *     SOFT_VERBALIZER they initialise the class vectors, and default to the label names
 * @param multiToken how a label word of several tokens is scored
 * @param calibrate contextual calibration of the verbalizer (Zhao et al. 2021): its label-word
 *     probabilities are divided by those of the content-free inputs "" and "N/A"
 * @param seed initialisation of the linear head
 */
public record ClassificationConfig(ClassificationHead head, Pooling pooling, PromptTemplate template,
        Verbalizer verbalizer, MultiTokenRule multiToken, boolean calibrate, long seed) {

    public ClassificationConfig {
        Objects.requireNonNull(head, "head");
        Objects.requireNonNull(multiToken, "multiToken");
        if (head == ClassificationHead.LINEAR) {
            if (template != null) {
                throw new InvalidConfigException("template", "is read by the verbalizer heads; the linear head"
                        + " classifies the plain text (choose --head verbalizer or soft-verbalizer, or drop it)");
            }
            if (verbalizer != null) {
                throw new InvalidConfigException("verbalizer", "is read by the verbalizer heads, not the linear"
                        + " head (choose --head verbalizer or soft-verbalizer, or drop it)");
            }
        } else {
            if (template == null) {
                throw new InvalidConfigException("template", "the " + head.cliName() + " head needs a template with"
                        + " a {mask} slot, e.g. \"" + PromptTemplate.DEFAULT + "\"");
            }
            if (pooling != null) {
                throw new InvalidConfigException("pooling", "is the linear head's setting; the " + head.cliName()
                        + " head reads the template's {mask} slot");
            }
        }
        if (head == ClassificationHead.VERBALIZER && verbalizer == null) {
            throw new InvalidConfigException("verbalizer", "the verbalizer head needs label words for every class,"
                    + " e.g. \"negative=bad,terrible;positive=good,great\"");
        }
        if (calibrate && head != ClassificationHead.VERBALIZER) {
            throw new InvalidConfigException("calibrate", "calibrates the verbalizer's label-word probabilities;"
                    + " the " + head.cliName() + " head has none");
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Builder with the defaults documented on each setter. */
    public static final class Builder {
        private ClassificationHead head = ClassificationHead.LINEAR;
        private Pooling pooling;
        private PromptTemplate template;
        private Verbalizer verbalizer;
        private MultiTokenRule multiToken = MultiTokenRule.FIRST;
        private boolean calibrate;
        private long seed = 42;

        private Builder() {}

        /** Default LINEAR. */
        public Builder head(ClassificationHead head) {
            this.head = head;
            return this;
        }

        /** Default: CLS for encoders, LAST for decoders (linear head only). */
        public Builder pooling(Pooling pooling) {
            this.pooling = pooling;
            return this;
        }

        /** The verbalizer heads' pattern; default {@value PromptTemplate#DEFAULT} for them. */
        public Builder template(PromptTemplate template) {
            this.template = template;
            return this;
        }

        /** Parses and sets the template. */
        public Builder template(String template) {
            this.template = PromptTemplate.parse(template);
            return this;
        }

        /** Label words (verbalizer heads). */
        public Builder verbalizer(Verbalizer verbalizer) {
            this.verbalizer = verbalizer;
            return this;
        }

        /** Parses and sets the label words ({@code label=word,word;label=word}). */
        public Builder verbalizer(String verbalizer) {
            this.verbalizer = Verbalizer.parse(verbalizer);
            return this;
        }

        /** Default FIRST (OpenPrompt's default). */
        public Builder multiToken(MultiTokenRule multiToken) {
            this.multiToken = multiToken;
            return this;
        }

        /** Default false. */
        public Builder calibrate(boolean calibrate) {
            this.calibrate = calibrate;
            return this;
        }

        /** Default 42. */
        public Builder seed(long seed) {
            this.seed = seed;
            return this;
        }

        /** @throws InvalidConfigException naming the first field that does not fit the head */
        public ClassificationConfig build() {
            PromptTemplate t = template == null && head != ClassificationHead.LINEAR
                    ? PromptTemplate.parse(PromptTemplate.DEFAULT) : template;
            return new ClassificationConfig(head, pooling, t, verbalizer, multiToken, calibrate, seed);
        }
    }
}
