package io.ptune.cli;

import io.ptune.model.Model;
import io.ptune.prompt.PromptModule;
import java.io.IOException;
import java.util.Locale;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code ptune embed}: the final hidden states ({@code last_hidden_state}) at every position, of
 * any family (encoders, e.g. a BERT-family .onnx sentence encoder, and decoders), optionally behind
 * an adapter. Floats are printed with {@link Float#toString(float)} (exact round trip).
 */
@Command(name = "embed", mixinStandardHelpOptions = true,
        description = "Print the final hidden states (last_hidden_state) at every position (virtual tokens first).",
        exitCodeOnInvalidInput = 1, exitCodeOnExecutionException = 1)
final class EmbedCommand extends ModelInputCommand {
    @Option(names = "--json",
            description = "Print {\"ids\", \"virtual_tokens\", \"last_hidden_state\"} with one row of C values per"
                    + " position; without it, each position's norm and first values.")
    boolean json;

    @Override
    protected void run(Model lm, PromptModule prompt, long[] ids) throws IOException {
        float[][] hidden = lm.hiddenStates(prompt, ids, null);
        int virtualTokens = prompt == null ? 0 : prompt.inputVirtualTokens();
        if (json) {
            MatrixJson.write(out(), ids, virtualTokens, "last_hidden_state", hidden);
        } else {
            for (int row = 0; row < hidden.length; row++) {
                double norm = 0;
                for (float v : hidden[row]) {
                    norm += (double) v * v;
                }
                String position = row < virtualTokens ? "virtual " + row
                        : "token " + (row - virtualTokens) + " (" + ids[row - virtualTokens] + ")";
                StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "%s  |h| %.4f  [", position,
                        Math.sqrt(norm)));
                for (int j = 0; j < Math.min(4, hidden[row].length); j++) {
                    line.append(String.format(Locale.ROOT, "%s%.4f", j == 0 ? "" : ", ", hidden[row][j]));
                }
                out().println(line.append(", ...]"));
            }
        }
    }
}
