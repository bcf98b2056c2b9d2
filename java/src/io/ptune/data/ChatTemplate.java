package io.ptune.data;

import io.ptune.InvalidConfigException;
import io.ptune.model.Tokenizer;
import java.util.Arrays;
import java.util.Objects;

/**
 * The Alpaca chat template ptune trains with:
 *
 * <pre>
 *   prompt = "Human: " + instruction + "\n" + input + "\n\nAssistant: "   (input present)
 *   prompt = "Human: " + instruction + "\n\nAssistant: "                  (input empty)
 *   target = output, then EOS
 * </pre>
 *
 * With an empty input the middle line is dropped rather than left blank, so a prompt without
 * context does not carry a stray empty line the model would have to learn to ignore.
 *
 * <p>The prompt is tokenised with special tokens (BOS where the model's tokenizer config adds
 * it), the output without; the two id lists are concatenated, so the answer's tokens never merge
 * with the template's. Labels are -100 on the prompt part: only the answer and EOS are learned.
 * Sequences longer than {@code maxLength} keep their start (the prompt, then as much of the
 * answer as fits).
 *
 * @param eosTokenId appended after every answer
 * @param maxLength the longest sequence produced, > 0
 */
public record ChatTemplate(Tokenizer tokenizer, long eosTokenId, int maxLength) {
    public static final int DEFAULT_MAX_LENGTH = 256;

    public ChatTemplate {
        Objects.requireNonNull(tokenizer, "tokenizer");
        if (maxLength <= 0) {
            throw new InvalidConfigException("maxLength", "must be > 0, got " + maxLength);
        }
    }

    /** The prompt text for {@code example}, ending in "Assistant: ". */
    public static String prompt(AlpacaExample example) {
        if (example.input().isEmpty()) {
            return "Human: " + example.instruction() + "\n\nAssistant: ";
        }
        return "Human: " + example.instruction() + "\n" + example.input() + "\n\nAssistant: ";
    }

    /** Prompt and answer as ids and labels, truncated to {@code maxLength}. */
    public TokenizedExample encode(AlpacaExample example) {
        long[] promptIds = tokenizer.encode(prompt(example), true);
        long[] answerIds = tokenizer.encode(example.output(), false);
        int total = promptIds.length + answerIds.length + 1;
        int length = Math.min(total, maxLength);
        long[] ids = new long[length];
        long[] labels = new long[length];
        Arrays.fill(labels, TokenizedExample.IGNORE_INDEX);
        for (int i = 0; i < length; i++) {
            long id;
            if (i < promptIds.length) {
                id = promptIds[i];
            } else if (i < promptIds.length + answerIds.length) {
                id = answerIds[i - promptIds.length];
            } else {
                id = eosTokenId;
            }
            ids[i] = id;
            if (i >= promptIds.length) {
                labels[i] = id;
            }
        }
        return new TokenizedExample(ids, labels);
    }
}
