package io.ptune.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.DatasetException;
import io.ptune.TestPaths;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AlpacaDatasetTest {
    @TempDir
    Path dir;

    private Path write(String name, String text) throws IOException {
        Path file = dir.resolve(name);
        Files.writeString(file, text);
        return file;
    }

    @Test
    void readsJsonArray() throws IOException {
        AlpacaDataset data = AlpacaDataset.load(write("a.json", """
                [
                  {"instruction": "Add", "input": "1 and 2", "output": "3"},
                  {"instruction": "Say hi", "output": "hi"}
                ]"""));
        assertEquals(2, data.size());
        assertEquals(new AlpacaExample("Add", "1 and 2", "3"), data.get(0));
        assertEquals(new AlpacaExample("Say hi", "", "hi"), data.get(1), "a missing input reads as empty");
    }

    @Test
    void readsJsonLinesSkippingBlankLines() throws IOException {
        AlpacaDataset data = AlpacaDataset.load(write("a.jsonl", """
                {"instruction": "A", "input": "", "output": "a"}

                {"instruction": "B", "input": "x", "output": "b"}
                """));
        assertEquals(2, data.size());
        assertEquals("B", data.get(1).instruction());
        assertEquals("x", data.get(1).input());
    }

    @Test
    void readsTheRealAlpacaFile() {
        AlpacaDataset data = AlpacaDataset.load(TestPaths.alpacaEn());
        assertEquals(52_002, data.size());
        assertEquals("Give three tips for staying healthy.", data.get(0).instruction());
        assertEquals(new AlpacaExample("Identify the odd one out.", "Twitter, Instagram, Telegram", "Telegram"),
                data.get(5));
        assertEquals(10, data.head(10).size());
    }

    @Test
    void rejectsEmptyFiles() throws IOException {
        assertTrue(assertThrows(DatasetException.class, () -> AlpacaDataset.load(write("e.json", "  \n")))
                .getMessage().contains("is empty"));
        assertTrue(assertThrows(DatasetException.class, () -> AlpacaDataset.load(write("e2.json", "[]")))
                .getMessage().contains("no examples"));
    }

    @Test
    void missingFieldNamesRowAndField() throws IOException {
        DatasetException array = assertThrows(DatasetException.class, () -> AlpacaDataset.load(write("m.json", """
                [{"instruction": "A", "output": "a"}, {"instruction": "B", "input": "x"}]""")));
        assertTrue(array.getMessage().contains("row 2") && array.getMessage().contains("\"output\""),
                array.getMessage());

        DatasetException lines = assertThrows(DatasetException.class, () -> AlpacaDataset.load(write("m.jsonl",
                "{\"instruction\": \"A\", \"output\": \"a\"}\n{\"input\": \"x\", \"output\": \"b\"}\n")));
        assertTrue(lines.getMessage().contains("line 2") && lines.getMessage().contains("\"instruction\""),
                lines.getMessage());
    }

    @Test
    void malformedInputIsReportedWithItsPlace() throws IOException {
        DatasetException type = assertThrows(DatasetException.class, () -> AlpacaDataset.load(write("t.json",
                "[{\"instruction\": 5, \"output\": \"a\"}]")));
        assertTrue(type.getMessage().contains("row 1") && type.getMessage().contains("must be a string"),
                type.getMessage());
        DatasetException badLine = assertThrows(DatasetException.class, () -> AlpacaDataset.load(write("b.jsonl",
                "{\"instruction\": \"A\", \"output\": \"a\"}\n{\"instruction\": \n")));
        assertTrue(badLine.getMessage().contains("line 2"), badLine.getMessage());
        DatasetException truncated = assertThrows(DatasetException.class, () -> AlpacaDataset.load(write("c.json",
                "[{\"instruction\": \"A\", \"output\": \"a\"},")));
        assertTrue(truncated.getMessage().contains("c.json"), truncated.getMessage());
        assertThrows(DatasetException.class, () -> AlpacaDataset.load(write("csv.json", "instruction,output\n")));
        assertTrue(assertThrows(DatasetException.class, () -> AlpacaDataset.load(dir.resolve("none.json")))
                .getMessage().contains("does not exist"));
    }
}
