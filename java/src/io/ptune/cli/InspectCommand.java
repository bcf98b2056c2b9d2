package io.ptune.cli;

import io.ptune.inspect.AdapterInspection;
import io.ptune.inspect.AdapterInspector;
import io.ptune.model.Model;
import java.nio.file.Path;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code ptune inspect}: what an adapter holds, and where its prompt lies among the model's tokens. */
@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = "Show an adapter's method, tensors, trainable parameters and base model; with --model, the"
                + " nearest vocabulary tokens (cosine) and the norm of each virtual token (prefix adapters: the"
                + " key/value norms of every layer).",
        exitCodeOnInvalidInput = 1, exitCodeOnExecutionException = 1)
final class InspectCommand extends CliCommand {
    @Parameters(index = "0", paramLabel = "ADAPTER", description = "The adapter folder (adapter_config.json, ...).")
    Path adapter;

    @Option(names = "--model", paramLabel = "PATH",
            description = "The model the adapter belongs to (a Hugging Face folder or a BERT-family .onnx):"
                    + " needed for the nearest tokens and the vocabulary's mean norm.")
    Path model;

    @Option(names = "--tokenizer", paramLabel = "FILE",
            description = "tokenizer.json to use instead of the one beside the model.")
    Path tokenizer;

    @Mixin
    DeviceOptions device;

    @Option(names = "--top-k", paramLabel = "K", description = "Nearest tokens per virtual token (default: 5).")
    int topK = 5;

    @Option(names = "--json", description = "Print one JSON object instead of the report.")
    boolean json;

    @Option(names = "--png", paramLabel = "FILE",
            description = "Also draw the virtual tokens' nearest tokens as a heat map (needs --model).")
    Path png;

    @Override
    protected int run() {
        if (topK <= 0) {
            throw new IllegalArgumentException("--top-k must be > 0, got " + topK);
        }
        if (model == null && (png != null || tokenizer != null)) {
            throw new IllegalArgumentException((png != null ? "--png" : "--tokenizer")
                    + " needs --model DIR: the nearest tokens come from the model's embeddings and tokenizer");
        }
        if (png != null) {
            TrainCommand.checkWritable(png.toAbsolutePath().getParent(), "--png");
        }
        AdapterInspection inspection;
        if (model == null) {
            inspection = AdapterInspector.inspect(adapter, null, topK);
        } else {
            try (Model lm = Model.load(model, tokenizer, device.loadOptions())) {
                inspection = AdapterInspector.inspect(adapter, lm, topK);
            }
        }
        if (png != null) {
            AdapterInspector.writeNearestTokensPng(inspection, png);
        }
        out().print(json ? inspection.toJson().toString() + System.lineSeparator() : inspection.toText());
        out().flush();
        return 0;
    }
}
