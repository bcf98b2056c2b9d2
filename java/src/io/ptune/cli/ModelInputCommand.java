package io.ptune.cli;

import io.ptune.adapter.PromptAdapter;
import io.ptune.model.Model;
import io.ptune.prompt.PromptModule;
import java.nio.file.Path;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * What {@code generate}, {@code logits} and {@code embed} share: {@code --model} (a Hugging Face
 * folder or a BERT-family .onnx file), {@code --tokenizer}, {@code --adapter} and the input
 * ({@code --prompt}/{@code --text} or {@code --ids}; with ids the tokenizer is never loaded, so a
 * folder without tokenizer files works). Flags are checked before the model is loaded; then the
 * model, the adapter (any prompt method, for inference) and the input ids are handed to
 * {@link #run(Model, PromptModule, long[])}, and closed after it.
 */
abstract class ModelInputCommand extends CliCommand {
    @Mixin
    ModelOptions model;

    @Option(names = "--adapter", paramLabel = "DIR", description = "Adapter directory of any prompt method (PEFT layout).")
    Path adapter;

    @ArgGroup(exclusive = true, multiplicity = "1")
    InputOptions input;

    @Override
    protected final int run() throws Exception {
        checkFlags();
        input.validate();
        try (Model lm = model.load();
                PromptModule prompt = adapter == null ? null : PromptAdapter.load(adapter, lm)) {
            run(lm, prompt, input.tokenIds(lm::tokenizer));
            out().flush();
        }
        return 0;
    }

    /** Checks the command's own flags (and keeps what they describe), before anything is loaded. */
    protected void checkFlags() {}

    /**
     * The command's work.
     *
     * @param prompt the adapter loaded for inference, or null without {@code --adapter}
     * @param ids the input, tokenised with the model's settings or as given by {@code --ids}
     */
    protected abstract void run(Model lm, PromptModule prompt, long[] ids) throws Exception;
}
