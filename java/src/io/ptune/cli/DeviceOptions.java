package io.ptune.cli;

import io.ptune.model.LoadOptions;
import picocli.CommandLine.Option;

/**
 * {@code --device} and {@code --dtype}: how a model is loaded (not training settings), on every
 * command that loads one. Given in a run config as {@code device: cuda:1}, recorded in
 * training_args.json.
 */
final class DeviceOptions {
    @Option(names = "--device", paramLabel = "DEVICE", defaultValue = "cpu",
            description = "Where the model computes: cpu, cuda or cuda:N (default: cpu). Without a usable GPU,"
                    + " cuda fails with one error line.")
    String device;

    @Option(names = "--dtype", paramLabel = "DTYPE", defaultValue = "fp32",
            description = "Compute dtype of the frozen model: fp32, bf16 or fp16 (CUDA only; training with a"
                    + " dynamic loss scaler) (default: fp32). Prompts, heads, optimizer state and losses stay fp32.")
    String dtype;

    /** The parsed flags; throws naming --device / --dtype for a value that is neither. */
    LoadOptions loadOptions() {
        return LoadOptions.parse(device, dtype);
    }
}
