package io.ptune.cli;

import java.io.PrintWriter;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.IParameterExceptionHandler;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * The {@code ptune} command line: {@code train}, {@code generate}, {@code logits}, {@code embed},
 * {@code eval}, {@code classify}, {@code inspect}, {@code sweep} and {@code serve}. Every command takes
 * {@code --config FILE} (a YAML or JSON run config, see {@link RunConfigFile}).
 *
 * <p>Results go to stdout, logs to stderr. Every failure (a bad flag, a missing file, a native
 * error) ends with {@code error: <message>} on stderr and exit code 1; {@code --verbose} adds the
 * stack trace.
 */
@Command(
        name = "ptune",
        mixinStandardHelpOptions = true,
        version = "ptune 0.1.0",
        description = "Prompt learning (prompt tuning, P-tuning, prefix tuning, composite and dynamic prompts) on frozen"
                + " Hugging Face models (Llama, Mistral, Qwen2, GPT-2, BLOOM decoders; BERT encoders, also from ONNX):"
                + " generation and classification (linear heads, PET verbalizers, soft verbalizers).",
        subcommands = {TrainCommand.class, GenerateCommand.class, LogitsCommand.class, EmbedCommand.class,
                EvalCommand.class, ClassifyCommand.class, InspectCommand.class, SweepCommand.class,
                ServeCommand.class},
        exitCodeOnInvalidInput = 1,
        exitCodeOnExecutionException = 1)
public final class PtuneCli implements Runnable {
    @Spec
    CommandSpec spec;

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    /**
     * The configured command line: bad flags print {@code error: ...} and a pointer to
     * {@code --help} instead of the whole usage text. Plain {@code new CommandLine(new PtuneCli())}
     * works too (same exit codes, picocli's own wording for bad flags).
     */
    public static CommandLine commandLine() {
        CommandLine commandLine = new CommandLine(new PtuneCli());
        commandLine.setParameterExceptionHandler(new ShortParameterErrors());
        return commandLine;
    }

    /** {@code ptune} alone: show the usage and fail, since nothing was asked. */
    @Override
    public void run() {
        throw new ParameterException(spec.commandLine(),
                "a subcommand is required: train, generate, logits, embed, eval, classify, inspect, sweep or serve");
    }

    /** One line naming the bad flag, then where to find help. */
    static final class ShortParameterErrors implements IParameterExceptionHandler {
        @Override
        public int handleParseException(ParameterException e, String[] args) {
            CommandLine commandLine = e.getCommandLine();
            PrintWriter err = commandLine.getErr();
            err.println("error: " + e.getMessage());
            err.println("see '" + commandLine.getCommandSpec().qualifiedName() + " --help'");
            err.flush();
            return commandLine.getCommandSpec().exitCodeOnInvalidInput();
        }
    }
}
