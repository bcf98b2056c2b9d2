package io.ptune.cli;

import io.ptune.model.ComputeThreads;
import io.ptune.InvalidConfigException;
import io.ptune.PtuneException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.function.Consumer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * What every subcommand shares: {@code --verbose}, {@code --threads}, and turning any failure into
 * {@code error: <message>} on stderr with exit code 1 (a stack trace only with --verbose).
 */
@Command(defaultValueProvider = RunConfigFile.Defaults.class)
abstract class CliCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--verbose", description = "Debug logging, and stack traces on errors.")
    boolean verbose;

    @Option(names = "--threads", paramLabel = "N",
            description = "Threads for tensor operations (default: the number of processors; PTUNE_THREADS).")
    Integer threads;

    @Option(names = "--config", paramLabel = "FILE",
            description = "Read flags from a YAML or JSON file: keys are the long flags without '--' (virtual-tokens:"
                    + " 20); flags on the command line override it; relative paths are against the file's folder.")
    Path config;

    /** The --config file's values by key, once read ({@link RunConfigFile.Defaults}). */
    private Map<String, String> configValues;

    Map<String, String> configValues() {
        return configValues;
    }

    void configValues(Map<String, String> values) {
        this.configValues = values;
    }

    @Override
    public final Integer call() {
        if (verbose) {
            // Read by slf4j-simple when the first logger is created, which is after this point.
            System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "debug");
        }
        try {
            if (config != null && configHoldsOwnFlags() && configValues == null) {
                RunConfigFile.values(spec, config);  // every flag was on the command line: still check the file
            }
            if (threads != null) {
                ComputeThreads.set(threads);
            }
            return run();
        } catch (InvalidConfigException e) {
            String flag = e.field().equals("threads") || e.field().equals("config") ? "--" + e.field()
                    : flagNames().get(e.field());
            String message = flag == null ? e.getMessage()
                    : flag + e.getMessage().substring(e.field().length());
            return fail(message, e);
        } catch (PtuneException e) {
            return fail(e.getMessage(), e);
        } catch (Exception e) {
            return fail(e.getMessage() == null ? e.toString() : e.getMessage(), e);
        } finally {
            configValues = null;  // a reused command line reads its next --config afresh
        }
    }

    /**
     * Whether {@code --config} holds this command's own flags (applied before {@link #run()}); a
     * command that passes the file on to another (sweep) says no.
     */
    protected boolean configHoldsOwnFlags() {
        return true;
    }

    /** The work of the command; returns the exit code. */
    protected abstract int run() throws Exception;

    /** Builder field names of {@link InvalidConfigException}s mapped to this command's flags. */
    protected Map<String, String> flagNames() {
        return Map.of();
    }

    protected PrintWriter out() {
        return spec.commandLine().getOut();
    }

    protected PrintWriter err() {
        return spec.commandLine().getErr();
    }

    /** Passes an optional flag's value to {@code setter} when the flag was given (else the default stays). */
    protected static <T> void ifGiven(T value, Consumer<? super T> setter) {
        if (value != null) {
            setter.accept(value);
        }
    }

    private int fail(String message, Exception e) {
        PrintWriter err = err();
        err.println("error: " + message);
        if (verbose) {
            e.printStackTrace(err);
        }
        err.flush();
        return 1;
    }
}
