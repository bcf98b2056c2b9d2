package io.ptune.e2e;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.TestPaths;
import java.io.IOException;
import java.nio.file.Files;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.DisabledIfSystemProperty;

/** CI runs the README's test command: .ci/run's command is the README's, word for word. */
@DisabledIfSystemProperty(named = "ptune.kernel", matches = TestPaths.KERNEL_INDEPENDENT)
class ReadmeTestCommandTest {
    private static final String MARKER = "# README test command:";

    /** Line continuations joined, runs of white space as one space. */
    static String normalized(String shell) {
        return shell.replace("\\\n", " ").replaceAll("\\s+", " ").strip();
    }

    @Test
    void ciRunsTheReadmeTestCommand() throws IOException {
        List<String> ci = Files.readAllLines(TestPaths.root().resolve(".ci/run"));
        int marker = ci.indexOf(MARKER);
        assertTrue(marker >= 0, ".ci/run has the line '" + MARKER + "' before the command");
        String command = normalized(String.join("\n", ci.subList(marker + 1, ci.size())));
        assertTrue(command.startsWith("./toolchains/bootstrap.sh") && command.contains("mvn -B install"),
                "the command after the marker: " + command);
        String readme = normalized(Files.readString(TestPaths.root().resolve("README.md")));
        assertTrue(readme.contains(command), "README.md's test command differs from .ci/run's: " + command
                + "; change both together");
    }
}
