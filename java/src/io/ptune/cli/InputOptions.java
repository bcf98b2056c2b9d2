package io.ptune.cli;

import io.ptune.model.Tokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;
import picocli.CommandLine.Option;

/** {@code --prompt TEXT} or {@code --ids 1,2,3}: exactly one of them. */
final class InputOptions {
    @Option(names = {"--prompt", "--text"}, paramLabel = "TEXT",
            description = "Text, tokenised with the model's settings (BOS, [CLS] ... where its tokenizer adds them).")
    String prompt;

    @Option(names = "--ids", paramLabel = "1,2,3",
            description = "Token ids, comma-separated, used exactly as given (no BOS added).")
    String ids;

    /** Rejects a malformed --ids list before any model is loaded. */
    void validate() {
        if (ids != null) {
            parseIds(ids);
        }
    }

    /** The input as token ids; the tokenizer is loaded only for text. */
    long[] tokenIds(Supplier<Tokenizer> tokenizer) {
        if (prompt != null) {
            long[] encoded = tokenizer.get().encode(prompt, true);
            if (encoded.length == 0) {
                throw new IllegalArgumentException("--prompt tokenises to no tokens; give some text");
            }
            return encoded;
        }
        return parseIds(ids);
    }

    static long[] parseIds(String text) {
        List<Long> values = new ArrayList<>();
        for (String part : text.split(",", -1)) {
            String trimmed = part.trim();
            if (trimmed.isEmpty()) {
                throw new IllegalArgumentException("--ids '" + text + "' has an empty entry; write ids"
                        + " like 1,2,3");
            }
            try {
                values.add(Long.parseLong(trimmed));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--ids: '" + trimmed + "' is not a token id; write"
                        + " ids like 1,2,3");
            }
        }
        return values.stream().mapToLong(Long::longValue).toArray();
    }
}
