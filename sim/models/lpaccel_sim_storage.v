// Storage of the simulation memory models (lpaccel.sim.models): a plain word
// array with byte write enables and a registered, non-transparent read port.
//
// Why a hand-written module: an Amaranth Memory is emitted with one initial
// value per word, so a model of 16 MiB or more cannot even be converted to
// Verilog. This array has no initial values (Verilator starts it at zero).
// Testbenches reach the array as <instance>.words (backdoor loads and checks).
module lpaccel_sim_storage #(
    parameter WIDTH = 128,
    parameter DEPTH = 1024,
    parameter ABITS = 10
) (
    input  wire               clk,
    input  wire [ABITS-1:0]   waddr,
    input  wire [WIDTH-1:0]   wdata,
    input  wire [WIDTH/8-1:0] wen,
    input  wire [ABITS-1:0]   raddr,
    input  wire               ren,
    output reg  [WIDTH-1:0]   rdata
);
    reg [WIDTH-1:0] words [0:DEPTH-1];
    integer i;
    always @(posedge clk) begin
        for (i = 0; i < WIDTH / 8; i = i + 1)
            if (wen[i])
                words[waddr][i * 8 +: 8] <= wdata[i * 8 +: 8];
        if (ren)
            rdata <= words[raddr];
    end
endmodule
