package io.ptune.inference;

import java.util.Arrays;

/**
 * One generated continuation.
 *
 * @param promptIds the ids the model was given (without padding or virtual tokens)
 * @param generatedIds the new ids, ending with EOS when the model produced it
 * @param text the new ids decoded, special tokens (EOS) left out; null when the model has no tokenizer files
 */
public record Generation(long[] promptIds, long[] generatedIds, String text) {
    public Generation {
        promptIds = promptIds.clone();
        generatedIds = generatedIds.clone();
    }

    @Override
    public long[] promptIds() {
        return promptIds.clone();
    }

    @Override
    public long[] generatedIds() {
        return generatedIds.clone();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Generation g && Arrays.equals(promptIds, g.promptIds)
                && Arrays.equals(generatedIds, g.generatedIds) && java.util.Objects.equals(text, g.text);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * Arrays.hashCode(promptIds) + Arrays.hashCode(generatedIds)) + java.util.Objects.hashCode(text);
    }

    @Override
    public String toString() {
        return "Generation[promptIds=" + Arrays.toString(promptIds) + ", generatedIds="
                + Arrays.toString(generatedIds) + ", text=" + text + "]";
    }
}
