package io.ptune;

import io.ptune.cli.PtuneCli;
import java.io.PrintWriter;
import java.io.StringWriter;
import picocli.CommandLine;

/** Runs {@code ptune} in this JVM as a user would, capturing its stdout, stderr and exit code. */
public final class CliRun {
    private CliRun() {}

    /** What one run printed and returned. */
    public record Result(int exitCode, String out, String err) {}

    /** {@code ptune ARGS} with a fresh command line. */
    public static Result run(String... args) {
        return run(new CommandLine(new PtuneCli()), args);
    }

    /** {@code ARGS} on {@code commandLine} (e.g. {@link PtuneCli#commandLine()}). */
    public static Result run(CommandLine commandLine, String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        commandLine.setOut(new PrintWriter(out, true));
        commandLine.setErr(new PrintWriter(err, true));
        int code = commandLine.execute(args);
        return new Result(code, out.toString(), err.toString());
    }
}
