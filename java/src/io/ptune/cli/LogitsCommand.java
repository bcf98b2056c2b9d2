package io.ptune.cli;

import io.ptune.model.Model;
import io.ptune.model.Tokenizer;
import io.ptune.prompt.PromptModule;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.Arrays;
import java.util.Locale;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code ptune logits}: the model's next-token logits at every position (a decoder's LM head), or
 * its masked-LM logits (an encoder's MLM head), for checking ptune against another implementation.
 * Floats are printed with {@link Float#toString(float)}, the shortest text that reads back as the
 * same float.
 */
@Command(name = "logits", mixinStandardHelpOptions = true,
        description = "Print LM (decoders) or MLM (encoders) logits at every position (virtual tokens first).",
        exitCodeOnInvalidInput = 1, exitCodeOnExecutionException = 1)
final class LogitsCommand extends ModelInputCommand {
    private static final int TOP = 5;

    @Option(names = "--json",
            description = "Print {\"ids\", \"virtual_tokens\", \"logits\"} with one row of vocabulary"
                    + " logits per position (virtual_tokens: input-level virtual positions, 0 for prefix"
                    + " tuning); without it, a readable top-" + TOP + " per position.")
    boolean json;

    @Override
    protected void run(Model lm, PromptModule prompt, long[] ids) throws IOException {
        float[][] logits = lm.logits(prompt, ids);
        // Input-level virtual positions; a prefix lives in the keys and values, not in the rows.
        int virtualTokens = prompt == null ? 0 : prompt.inputVirtualTokens();
        if (json) {
            MatrixJson.write(out(), ids, virtualTokens, "logits", logits);
        } else {
            writeTop(out(), lm.hasTokenizer() ? lm.tokenizer() : null, ids, virtualTokens, logits);
        }
    }

    /** A readable top-k per position; token texts only when the model has a tokenizer. */
    private static void writeTop(PrintWriter out, Tokenizer tokenizer, long[] ids, int virtualTokens,
            float[][] logits) {
        for (int row = 0; row < logits.length; row++) {
            String position = row < virtualTokens ? "virtual " + row
                    : "token " + (row - virtualTokens) + " (" + ids[row - virtualTokens]
                            + text(tokenizer, ids[row - virtualTokens]) + ")";
            StringBuilder line = new StringBuilder(position).append(" ->");
            for (int id : topIds(logits[row], TOP)) {
                line.append(String.format(Locale.ROOT, "  %d%s %.3f", id, text(tokenizer, id), logits[row][id]));
            }
            out.println(line);
        }
    }

    private static String text(Tokenizer tokenizer, long id) {
        return tokenizer == null ? "" : " " + quoted(tokenizer.decode(new long[] {id}, false));
    }

    private static String quoted(String text) {
        return "\"" + text.replace("\n", "\\n") + "\"";
    }

    static int[] topIds(float[] row, int k) {
        int n = Math.min(k, row.length);
        int[] best = new int[n];
        Arrays.fill(best, -1);
        for (int id = 0; id < row.length; id++) {
            for (int slot = 0; slot < n; slot++) {
                if (best[slot] < 0 || row[id] > row[best[slot]]) {
                    System.arraycopy(best, slot, best, slot + 1, n - slot - 1);
                    best[slot] = id;
                    break;
                }
            }
        }
        return best;
    }
}
