package io.ptune.cli;

import io.ptune.model.Model;
import java.nio.file.Path;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code --model} (a Hugging Face folder or a BERT-family .onnx file), {@code --tokenizer}, and how
 * it is loaded ({@code --device}, {@code --dtype}).
 */
final class ModelOptions {
    @Option(names = "--model", required = true, paramLabel = "PATH",
            description = "Hugging Face model directory (config.json, tokenizer.json, model.safetensors), or a"
                    + " BERT-family encoder exported to .onnx.")
    Path model;

    @Option(names = "--tokenizer", paramLabel = "FILE",
            description = "tokenizer.json to use instead of the one beside the model.")
    Path tokenizer;

    @Mixin
    DeviceOptions device;

    Model load() {
        return Model.load(model, tokenizer, device.loadOptions());
    }
}
